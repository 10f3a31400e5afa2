"""The observation: what a real device knows at decision time, turned into one flat float32 vector.

This module is the single definition of the observation, used by the environment and by the device runtime that
runs an exported policy; it imports only NumPy so it can ship to a device as is.

Fields, in order (k = student top-k, H = history length, R = offload resolutions, A = R + 3 actions: local,
offload at each resolution, teacher, reuse):

| field              | count | meaning                                                                         | range    |
|--------------------|-------|---------------------------------------------------------------------------------|----------|
| top{i}_prob        | k     | student's calibrated top-k probabilities, descending                            | [0, 1]   |
| margin             | 1     | top-1 minus top-2 probability                                                   | [0, 1]   |
| entropy            | 1     | entropy of (top-k, rest) divided by log(k + 1)                                  | [0, 1]   |
| meas{j}_log_mbps   | H     | log10 of the j-th most recent measured upload throughput, /2 (missing: estimate)| [-1, 1]  |
| meas_count         | 1     | measurements available / H                                                     | [0, 1]   |
| est_log_mbps       | 1     | log10 of the throughput estimate (harmonic mean of measurements, else prior), /2| [-1, 1]  |
| backlog            | 1     | seconds until the uplink is free / deadline                                     | [0, 10]  |
| pending            | 1     | uploads in flight / send-buffer size                                            | [0, 1]   |
| since_meas         | 1     | seconds since the last completed upload (or episode start), /10                 | [0, 1]   |
| offload_rate       | 1     | exponential moving average of "this frame was offloaded"                        | [0, 1]   |
| last_action_{a}    | A     | one-hot of the previous action                                                  | {0, 1}   |
| size_{a}_kb        | R + 1 | JPEG size of this frame for each remote action (R resolutions, teacher), kB/32  | [0, 10]  |
| slack_{a}          | R + 1 | predicted (deadline - expected answer time) / deadline, at the estimate         | [-5, 1]  |
| dist_local         | 1     | distilled P(the student's answer is right) for this frame                       | [0, 1]   |
| dist_{a}           | R + 1 | distilled P(remote action a's answer is right) for this frame                   | [0, 1]   |
| cache_held         | 1     | 1 if the device holds a remote answer (its answer cache)                        | {0, 1}   |
| cache_age          | 1     | seconds since the cached answer's frame was captured, /10                       | [0, 1]   |
| cache_src_{a}      | R + 1 | one-hot of the remote action that produced the cached answer                    | {0, 1}   |
| cache_conf         | 1     | the remote model's confidence in the cached answer                              | [0, 1]   |
| cache_agrees       | 1     | 1 if the student's top-1 is the cached class                                    | {0, 1}   |
| student_p_cached   | 1     | the student's calibrated probability of the cached class (0 outside its top-k)  | [0, 1]   |
| cos_prev           | 1     | embedding cosine of this frame to the previous frame (0 at an episode's start)  | [-1, 1]  |
| cos_cache          | 1     | embedding cosine of this frame to the cached answer's frame (0 when none)       | [-1, 1]  |
| top1_stable        | 0 / 1 | only with temporal: frames before this one with the same student top-1, in a row, /15 | [0, 1] |
| pmax_ema           | 0 / 1 | only with temporal: EMA (rate 0.25) of the earlier frames' top-1 probability (0: none) | [0, 1] |
| oracle_log_mbps    | 0 / 1 | only with oracle_bandwidth: log10 of the true current throughput, /2            | [-1, 1]  |

``action_mask`` reads off an observation which actions can take effect (no send into a full buffer, no reuse
without a cached answer): policies trained with ``TrainConfig.action_mask`` apply it inside their network
(``agents.training.adjusted``).

Every field is something the device knows at decision time: its own student outputs (probabilities, embedding,
the distilled head's estimates), its uploads and the remote answers that have come back. No label, no future.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

LOG_MBPS_FLOOR = 0.01  # 10 kbit/s: log features bottom out here (outages)
KB_SCALE = 32.0
SINCE_SCALE_S = 10.0
CACHE_AGE_SCALE_S = 10.0
SPEC_FORMAT_VERSION = 2  # ObservationSpec.to_dict's layout; from_dict reads it and 1 (before ``temporal``: False)
TOP1_STABLE_SCALE = 15.0  # frames: top1_stable saturates after a second of an unchanged top-1 at 15 fps
PMAX_EMA_RATE = 0.25  # pmax_ema's smoothing: about the last 8 frames, the window benchmarks/temporal_confidence.py uses


def remote_action_names(resolutions: tuple[int, ...] | list[int]) -> list[str]:
    """The actions that send the frame: offload at each resolution (px), then the teacher."""
    return [*[f"offload@{int(r)}" for r in resolutions], "teacher"]


def action_names(resolutions: tuple[int, ...] | list[int]) -> list[str]:
    """Every action in index order: local, the remote actions, reuse (the one definition of the action list)."""
    return ["local", *remote_action_names(resolutions), "reuse"]


@dataclass(frozen=True)
class ObservationSpec:
    """Shape of the observation: how many of each field, plus the timing constants the slack features use."""

    top_k: int
    history: int
    resolutions: tuple[int, ...]
    deadline_s: float
    remote_rtt_s: tuple[float, ...]  # per remote action (R resolutions, then teacher)
    remote_compute_s: tuple[float, ...]  # an answer's time beyond upload and round trip: compute + request overhead
    max_queue: int
    prior_mbps: float
    oracle_bandwidth: bool = False
    temporal: bool = False  # the student's recent history: top1_stable, pmax_ema (off by default; the env and the
    # device controller both count them online)

    @property
    def n_actions(self) -> int:
        return len(self.resolutions) + 3

    @property
    def remote_names(self) -> list[str]:
        """The actions that send the frame: offload at each resolution, then the teacher."""
        return remote_action_names(self.resolutions)

    @property
    def action_names(self) -> list[str]:
        return action_names(self.resolutions)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values, plus ``format_version``; ``from_dict`` reads it back equal."""
        out: dict[str, Any] = {"format_version": SPEC_FORMAT_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "ObservationSpec") -> ObservationSpec:
        """The spec ``to_dict`` wrote; a missing or extra field, another format version or a value of the wrong
        kind is a ValueError naming it (``where`` says whose spec: a file, a manifest key)."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object with the ObservationSpec fields, got "
                             f"{type(data).__name__}")
        version = data.get("format_version")
        if version not in (1, SPEC_FORMAT_VERSION) or isinstance(version, bool):
            raise ValueError(f"{where}: format_version {version!r}; this code reads ObservationSpec formats 1 and "
                             f"{SPEC_FORMAT_VERSION}")
        if version == 1 and "temporal" not in data:  # format 1 had no temporal fields
            data = {**data, "temporal": False}
        elif version == 1:
            raise ValueError(f"{where}: field 'temporal' is not part of ObservationSpec format 1")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]  # to_dict writes every field: a missing one is an error
        extra = sorted(set(data) - set(names) - {"format_version"})
        if missing or extra:
            raise ValueError(f"{where}: " + "; ".join(
                ([f"missing field(s) {missing}"] if missing else []) + ([f"unknown field(s) {extra}"] if extra else []))
                + f" (expected {names})")
        kw: dict[str, Any] = {}
        for name in names:
            value = data[name]
            if name in ("resolutions", "remote_rtt_s", "remote_compute_s"):
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) and
                                                                   not isinstance(v, bool) for v in value):
                    raise ValueError(f"{where}: field {name!r} must be a list of numbers, got {value!r}")
                value = tuple(int(v) for v in value) if name == "resolutions" else tuple(float(v) for v in value)
            elif name in ("top_k", "history", "max_queue"):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(f"{where}: field {name!r} must be an integer, got {value!r}")
            elif name in ("oracle_bandwidth", "temporal"):
                if not isinstance(value, bool):
                    raise ValueError(f"{where}: field {name!r} must be true or false, got {value!r}")
            elif not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{where}: field {name!r} must be a number, got {value!r}")
            else:
                value = float(value)
            kw[name] = value
        spec = cls(**kw)
        n_remote = len(spec.resolutions) + 1
        for name in ("remote_rtt_s", "remote_compute_s"):
            if len(getattr(spec, name)) != n_remote:
                raise ValueError(f"{where}: field {name!r} has {len(getattr(spec, name))} values, expected "
                                 f"{n_remote} (one per remote action {spec.remote_names})")
        return spec

    @property
    def field_names(self) -> list[str]:
        remote = self.remote_names
        names = [f"top{i + 1}_prob" for i in range(self.top_k)] + ["margin", "entropy"]
        names += [f"meas{j + 1}_log_mbps" for j in range(self.history)]
        names += ["meas_count", "est_log_mbps", "backlog", "pending", "since_meas", "offload_rate"]
        names += [f"last_action_{a}" for a in self.action_names]
        names += [f"size_{a}_kb" for a in remote] + [f"slack_{a}" for a in remote]
        names += ["dist_local"] + [f"dist_{a}" for a in remote]
        names += ["cache_held", "cache_age"] + [f"cache_src_{a}" for a in remote]
        names += ["cache_conf", "cache_agrees", "student_p_cached", "cos_prev", "cos_cache"]
        names += ["top1_stable", "pmax_ema"] if self.temporal else []
        return names + (["oracle_log_mbps"] if self.oracle_bandwidth else [])

    @property
    def dim(self) -> int:
        return len(self.field_names)

    def bounds(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Per-field (low, high) of the observation box."""
        table = {"margin": (0, 1), "entropy": (0, 1), "meas_count": (0, 1), "est_log_mbps": (-1, 1),
                 "top1_stable": (0, 1), "pmax_ema": (0, 1),
                 "backlog": (0, 10), "pending": (0, 1), "since_meas": (0, 1), "offload_rate": (0, 1),
                 "oracle_log_mbps": (-1, 1)}
        lo, hi = [], []
        for name in self.field_names:
            if name in table:
                a, b = table[name]
            elif name.endswith("_log_mbps"):
                a, b = -1, 1
            elif name.startswith("size_"):
                a, b = 0, 10
            elif name.startswith("slack_"):
                a, b = -5, 1
            elif name.startswith("cos_"):
                a, b = -1, 1
            else:  # probabilities and one-hots
                a, b = 0, 1
            lo.append(a)
            hi.append(b)
        return np.array(lo, np.float32), np.array(hi, np.float32)


# Scalar device signals, one record per device: ``build_observation``'s named inputs besides the per-frame tables
# and the measurement history. Adding an observation input that is one number per device is one line here.
SIGNALS = np.dtype([
    ("n_meas", np.int64),          # valid entries of the measurement history (0..H)
    ("backlog_s", np.float64),     # seconds until the uplink is free
    ("pending", np.int64),         # uploads in flight
    ("since_meas_s", np.float64),  # seconds since the last completed upload (or the episode start)
    ("offload_rate", np.float64),  # EMA of "this frame was offloaded"
    ("last_action", np.int64),     # previous action (0 at episode start)
    ("true_mbps", np.float64),     # the trace's true throughput (read only with oracle_bandwidth)
    ("cache_held", np.int64),      # 1 if a remote answer is cached
    ("cache_age_s", np.float64),   # seconds since the cached answer's frame was captured
    ("cache_src", np.int64),       # remote action index (0..R) that produced it (-1: none)
    ("cache_conf", np.float64),    # that model's confidence in its answer
    ("cache_agrees", np.int64),    # 1 if the student's top-1 is the cached class
    ("student_p_cached", np.float64),  # the student's calibrated probability of the cached class (0 outside top-k)
    ("cos_prev", np.float64),      # embedding cosine to the previous frame (0 at an episode's start)
    ("cos_cache", np.float64),     # embedding cosine to the cached answer's frame (0 when none)
    ("top1_run", np.int64),        # frames right before this one with the same student top-1 (read only with temporal)
    ("pmax_ema", np.float64),      # EMA of the earlier frames' top-1 probability, 0 before any (only with temporal)
])


def observation_constants(spec: ObservationSpec) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The spec's numbers as ``observation_into`` takes them: (remote_times [2, R + 1], consts [4]).

    remote_times holds the round trip (row 0) and compute (row 1) seconds per remote action; consts is
    (deadline_s, max_queue, prior_mbps, oracle, temporal).
    """
    remote_times = np.array([spec.remote_rtt_s, spec.remote_compute_s], np.float64)
    consts = np.array([spec.deadline_s, spec.max_queue, spec.prior_mbps, float(spec.oracle_bandwidth),
                       float(spec.temporal)])
    return remote_times, consts


def observation_into(out: NDArray[np.float32], frame: NDArray[np.int64], conf: NDArray[np.float64],
                     remote_kb: NDArray[np.float64], dist: NDArray[np.float64], meas_mbps: NDArray[np.float64],
                     signals: NDArray, remote_times: NDArray[np.float64], consts: NDArray[np.float64]) -> None:
    """THE observation: writes row i of ``out`` [B, D] for each device i, one scalar at a time.

    Plain Python over NumPy arrays on purpose: the environment compiles this very function with Numba
    (``envs/kernel.py``), the device runtime runs it uncompiled, so both use one source.

    Args:
        out: [B, D] float32, written in place (D = ``ObservationSpec.dim``).
        frame: [B] row of ``conf`` and ``remote_kb`` that device i is looking at.
        conf: [F, k + 2] ``confidence_features`` of the student's top-k probabilities.
        remote_kb: [F, R + 1] JPEG size in kB for each remote action (R resolutions, teacher).
        dist: [F, R + 2] distilled P(right) of the student, then of each remote action.
        meas_mbps: [B, H] measured upload throughputs, newest first (entries past ``n_meas`` ignored).
        signals: [B] ``SIGNALS`` records. remote_times, consts: from ``observation_constants``.
    """
    deadline_s, max_queue, prior_mbps, oracle, temporal = consts[0], consts[1], consts[2], consts[3], consts[4]
    n_conf = conf.shape[1]
    h = meas_mbps.shape[1]
    n_remote = remote_kb.shape[1]
    n_actions = n_remote + 2  # local, remote actions, reuse
    for i in range(out.shape[0]):
        f = frame[i]
        sig = signals[i]
        c = 0
        for j in range(n_conf):
            out[i, c] = conf[f, j]
            c += 1
        n_meas = min(max(sig["n_meas"], 0), h)
        inv = 0.0
        for j in range(n_meas):
            inv += 1.0 / max(meas_mbps[i, j], 1e-6)
        est = n_meas / max(inv, 1e-12) if n_meas > 0 else prior_mbps  # harmonic mean, else the prior
        log_est = min(max(math.log10(max(est, LOG_MBPS_FLOOR)) / 2.0, -1.0), 1.0)
        for j in range(h):
            out[i, c] = min(max(math.log10(max(meas_mbps[i, j], LOG_MBPS_FLOOR)) / 2.0, -1.0), 1.0) \
                if j < n_meas else log_est
            c += 1
        out[i, c] = n_meas / h
        out[i, c + 1] = log_est
        out[i, c + 2] = min(max(sig["backlog_s"] / deadline_s, 0.0), 10.0)
        out[i, c + 3] = min(max(sig["pending"] / max_queue, 0.0), 1.0)
        out[i, c + 4] = min(max(sig["since_meas_s"] / SINCE_SCALE_S, 0.0), 1.0)
        out[i, c + 5] = sig["offload_rate"]
        c += 6
        for a in range(n_actions):
            out[i, c + a] = 1.0 if a == sig["last_action"] else 0.0
        c += n_actions
        for a in range(n_remote):
            kb = remote_kb[f, a]
            out[i, c + a] = min(max(kb / KB_SCALE, 0.0), 10.0)
            expected = sig["backlog_s"] + kb * 8e-3 / est + remote_times[0, a] + remote_times[1, a]
            out[i, c + n_remote + a] = min(max((deadline_s - expected) / deadline_s, -5.0), 1.0)
        c += 2 * n_remote
        for a in range(n_remote + 1):
            out[i, c + a] = dist[f, a]
        c += n_remote + 1
        held = sig["cache_held"] > 0
        out[i, c] = 1.0 if held else 0.0
        out[i, c + 1] = min(max(sig["cache_age_s"] / CACHE_AGE_SCALE_S, 0.0), 1.0) if held else 0.0
        c += 2
        for a in range(n_remote):
            out[i, c + a] = 1.0 if held and a == sig["cache_src"] else 0.0
        c += n_remote
        out[i, c] = sig["cache_conf"] if held else 0.0
        out[i, c + 1] = 1.0 if held and sig["cache_agrees"] > 0 else 0.0
        out[i, c + 2] = sig["student_p_cached"] if held else 0.0
        out[i, c + 3] = min(max(sig["cos_prev"], -1.0), 1.0)
        out[i, c + 4] = min(max(sig["cos_cache"], -1.0), 1.0) if held else 0.0
        c += 5
        if temporal > 0:
            out[i, c] = min(max(sig["top1_run"] / TOP1_STABLE_SCALE, 0.0), 1.0)
            out[i, c + 1] = min(max(sig["pmax_ema"], 0.0), 1.0)
            c += 2
        if oracle > 0:
            out[i, c] = min(max(math.log10(max(sig["true_mbps"], LOG_MBPS_FLOOR)) / 2.0, -1.0), 1.0)


def action_mask(spec: ObservationSpec, obs: Any) -> Any:
    """[B, A] booleans: True where an action can take effect, read off the observations ``obs`` [B, D].

    Two actions cannot, and the env scores them as the local answer: a remote action while the send buffer is
    full (``pending`` at 1: the env refuses the send, and the student's answer is used, not the cache's), and
    ``reuse`` while no remote answer is held (``cache_held`` 0). ``local`` is always possible. ``obs`` may be a
    NumPy array (the env's ``action_masks``, the clone's targets) or a torch tensor (the masked policy, and so the
    exported ONNX graph): one rule for all of them, in the array's own library.
    """
    names = spec.field_names
    free = obs[:, names.index("pending")] < 1.0 - 1e-6  # pending = uploads in flight / buffer size, clipped to 1
    held = obs[:, names.index("cache_held")] > 0.5
    cols = [free | ~free, *[free] * (spec.n_actions - 2), held]
    if isinstance(obs, np.ndarray):
        return np.stack(cols, 1)
    import torch  # a tensor: the policy network's forward pass

    return torch.stack(cols, 1)


def confidence_features(topk_prob: NDArray) -> NDArray[np.float64]:
    """[B, k + 2]: the top-k probabilities, the margin and the normalised entropy of (top-k, rest).

    Depends on the frame only, so the environment computes it once per profile frame.
    """
    p = np.asarray(topk_prob, np.float64)
    k = p.shape[1]
    rest = np.clip(1.0 - p.sum(1), 0.0, 1.0)
    ent = -(np.where(p > 0, p * np.log(np.maximum(p, 1e-12)), 0.0).sum(1)
            + np.where(rest > 0, rest * np.log(np.maximum(rest, 1e-12)), 0.0)) / np.log(k + 1)
    margin = p[:, 0] - (p[:, 1] if k > 1 else 0.0)
    return np.concatenate([p, margin[:, None], np.clip(ent, 0, 1)[:, None]], axis=1)


def build_observation(spec: ObservationSpec, topk_prob: NDArray, remote_kb: NDArray, dist: NDArray,
                      meas_mbps: NDArray, signals: NDArray) -> NDArray[np.float32]:
    """Observations [B, D] of B devices from their raw signals (the device runtime's entry point).

    Args:
        topk_prob: [B, k] calibrated top-k probabilities, descending.
        remote_kb: [B, R + 1] this frame's JPEG size in kB for each remote action.
        dist: [B, R + 2] the distilled head's P(right) for the student and each remote action on this frame.
        meas_mbps: [B, H] measured throughputs of completed uploads, newest first.
        signals: [B] ``SIGNALS`` records (``true_mbps`` is read only with ``spec.oracle_bandwidth``).
    """
    signals = np.asarray(signals)
    if signals.dtype != SIGNALS:
        raise TypeError(f"signals must be a record array of dtype offload_common.observation.SIGNALS, got {signals.dtype}")
    b = len(signals)
    conf = confidence_features(topk_prob)
    remote_kb = np.asarray(remote_kb, np.float64).reshape(b, len(spec.resolutions) + 1)
    dist = np.asarray(dist, np.float64).reshape(b, len(spec.resolutions) + 2)
    meas = np.asarray(meas_mbps, np.float64).reshape(b, spec.history)
    out = np.empty((b, spec.dim), np.float32)
    observation_into(out, np.arange(b), conf, remote_kb, dist, meas, signals, *observation_constants(spec))
    return out
