"""The one batched dynamics core behind both environments (the single env is batch size 1), so they cannot drift.

Per frame n of an episode on trace row, captured at t = t0 + n / fps: the device runs its student (student_s), then
acts at td = t + student_s. An offload waits for the FIFO uplink (start = max(td, link_free)), takes
``Trace.transfer_time(start, bytes)`` to upload, then the round trip and the model's compute time. The answer counts
if it is back by t + deadline; otherwise the local answer is used (the bytes were spent, the link stayed busy).
Each completed upload yields a throughput measurement (bytes / upload time) that the device sees once it completed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import NDArray

from bandwidth_traces import Trace, TraceBank, split as split_traces
from perception import FrameProfile

from .config import EnvConfig
from .features import ObservationSpec, build_observation, confidence_features


def select_traces(traces: Sequence[Trace], config: EnvConfig) -> list[Trace]:
    """The traces an env with ``config`` replays: family filter, uplink only, then the configured split side."""
    chosen = [t for t in traces if (config.trace_families is None or t.family in config.trace_families)
              and not (config.skip_downlink and t.name.endswith(".down"))]
    if not chosen:
        raise ValueError(f"no traces left after filtering (families={config.trace_families}, "
                         f"skip_downlink={config.skip_downlink}) out of {len(traces)}")
    if config.trace_split == "all":
        return chosen
    train, test = split_traces(chosen, config.test_fraction, config.split_seed)
    side = train if config.trace_split == "train" else test
    if not side:
        raise ValueError(f"the {config.trace_split} side of the trace split is empty ({len(chosen)} traces)")
    return side


def select_profile(profile: FrameProfile, config: EnvConfig) -> FrameProfile:
    """The clips an env with ``config`` replays (by-clip split; calibration clips stay on the train side)."""
    if config.profile_split == "all":
        return profile
    train, test = profile.split(config.test_fraction, config.split_seed)
    return train if config.profile_split == "train" else test


class OffloadDynamics:
    """State and step of B independent devices, vectorised over B with NumPy."""

    def __init__(self, num_envs: int, profile: FrameProfile, traces: Sequence[Trace], config: EnvConfig):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.config = config
        self.num_envs = b = num_envs
        prof = select_profile(profile, config)
        self.traces = select_traces(traces, config)
        self.bank = TraceBank(self.traces)

        clips, starts, counts = np.unique(prof.clip, return_index=True, return_counts=True)
        if len(set(counts.tolist())) != 1:
            raise ValueError(f"profile clips must all have the same number of frames, got {sorted(set(counts))}")
        self.frames_per_clip = int(counts[0])
        self.clip_start = starts.astype(np.int64)
        self.n_clips_episode = -(-(config.episode_frames + 1) // self.frames_per_clip)

        lat = prof.meta.get("latency_ms", {})
        res = prof.resolutions
        r = len(res)
        self.n_remote = r + 1
        self.conf_features = confidence_features(prof.student_topk_prob)  # depends on the frame only
        self.student_correct = prof.student_correct
        self.remote_bytes = np.concatenate([prof.server_bytes, prof.teacher_bytes[:, None]], 1).astype(np.float64)
        self.remote_kb = self.remote_bytes / 1000.0
        self.remote_correct = np.concatenate([prof.server_correct, prof.teacher_correct[:, None]], 1)
        teacher_key = next((k for k in lat if k.startswith("teacher@")), None)
        compute_ms = [lat.get(f"server@{x}", 0.0) for x in res] + [lat.get(teacher_key, 0.0) if teacher_key else 0.0]
        self.compute_s = np.array(compute_ms) * config.compute_scale / 1000.0
        self.rtt_s = np.array([config.edge_rtt_ms] * r + [config.cloud_rtt_ms]) / 1000.0
        student_key = next((k for k in lat if k.startswith("student_int8@")), None)
        self.student_s = (config.student_ms if config.student_ms is not None
                          else lat.get(student_key, 0.0) if student_key else 0.0) / 1000.0
        self.spec = ObservationSpec(
            top_k=prof.top_k, history=config.history, resolutions=res, deadline_s=config.deadline_s,
            remote_rtt_s=tuple(self.rtt_s.tolist()), remote_compute_s=tuple(self.compute_s.tolist()),
            max_queue=config.max_queue, prior_mbps=config.prior_mbps, oracle_bandwidth=config.oracle_bandwidth)
        self.profile = prof

        p = config.history + config.max_queue  # ring of uploads: all in flight plus the H newest completed
        self._ring = p
        self.row = np.zeros(b, np.int64)
        self.t0 = np.zeros(b)
        self.n = np.zeros(b, np.int64)
        self.sched = np.zeros((b, self.n_clips_episode), np.int64)
        self.link_free = np.zeros(b)
        self.fin = np.full((b, p), -np.inf)
        self.thr = np.zeros((b, p))
        self.issued = np.zeros(b, np.int64)
        self.ema = np.zeros(b)
        self.last_action = np.zeros(b, np.int64)
        self._arange = np.arange(b)
        self._hist = np.arange(config.history)

    @property
    def n_actions(self) -> int:
        return self.n_remote + 1

    # ---- episode start -------------------------------------------------------------------------------------
    def reset_rows(self, rows: Sequence[int], rngs: Sequence[np.random.Generator]) -> None:
        """Start new episodes in ``rows``, each drawing trace, start offset and clips from its own generator."""
        for i, rng in zip(rows, rngs):
            row = int(rng.integers(len(self.traces)))
            self.row[i] = row
            self.t0[i] = rng.uniform(0.0, self.bank.duration_s[row])
            self.sched[i] = rng.integers(len(self.clip_start), size=self.n_clips_episode)
        rows = np.asarray(rows, np.int64)
        self.n[rows] = 0
        self.link_free[rows] = self.t0[rows]
        self.fin[rows] = -np.inf
        self.thr[rows] = 0.0
        self.issued[rows] = 0
        self.ema[rows] = 0.0
        self.last_action[rows] = 0

    def set_episode(self, i: int, trace: int | None = None, start_s: float | None = None,
                    clips: Sequence[int] | None = None) -> None:
        """Pin parts of row i's freshly reset episode: trace row, start offset (s) and/or clip sequence."""
        if trace is not None:
            if not 0 <= trace < len(self.traces):
                raise ValueError(f"episode trace index {trace} out of range [0, {len(self.traces)})")
            self.row[i] = trace
        if start_s is not None:
            self.t0[i] = float(start_s)
        if clips is not None:
            c = np.asarray(clips, np.int64)
            if c.ndim != 1 or c.size == 0 or (c < 0).any() or (c >= len(self.clip_start)).any():
                raise ValueError(f"episode clips must be indices in [0, {len(self.clip_start)}), got {clips!r}")
            self.sched[i] = np.resize(c, self.n_clips_episode)
        self.link_free[i] = self.t0[i]

    # ---- the current frame and what the device knows -----------------------------------------------------
    def _frame(self) -> NDArray[np.int64]:
        k = self.frames_per_clip
        return self.clip_start[self.sched[self._arange, self.n // k]] + self.n % k

    def _times(self) -> tuple[NDArray, NDArray]:
        t = self.t0 + self.n * self.config.frame_s
        return t, t + self.student_s

    def _pending(self, td: NDArray) -> NDArray[np.int64]:
        return (self.fin > td[:, None]).sum(1)

    def device_signals(self) -> dict[str, NDArray]:
        """What each device knows at its current decision time, as raw signals (``build_observation``'s inputs).

        Includes ``frame`` (profile index) and ``true_mbps`` (only with ``oracle_bandwidth``, else None).
        """
        f = self._frame()
        _, td = self._times()
        pending = self._pending(td)
        newest = self.issued - pending - 1  # index of the newest completed upload (FIFO: completions in order)
        idx = newest[:, None] - self._hist[None, :]
        valid = idx >= 0
        slot = np.where(valid, idx, 0) % self._ring
        last_done = np.where(newest >= 0, self.fin[self._arange, np.maximum(newest, 0) % self._ring], self.t0)
        return {"frame": f, "topk_prob": self.profile.student_topk_prob[f], "remote_kb": self.remote_kb[f],
                "meas_mbps": self.thr[self._arange[:, None], slot], "n_meas": valid.sum(1),
                "backlog_s": np.maximum(self.link_free - td, 0.0), "pending": pending,
                "since_meas_s": td - last_done, "offload_rate": self.ema, "last_action": self.last_action,
                "true_mbps": self.bank.mbps_at(self.row, td) if self.config.oracle_bandwidth else None}

    def observe(self) -> NDArray[np.float32]:
        """Observations of all B devices at their current frame's decision time."""
        sig = self.device_signals()
        return build_observation(
            self.spec, None, sig["remote_kb"], sig["meas_mbps"], sig["n_meas"], sig["backlog_s"], sig["pending"],
            sig["since_meas_s"], sig["offload_rate"], sig["last_action"], sig["true_mbps"],
            conf_features=self.conf_features[sig["frame"]])

    # ---- one frame -----------------------------------------------------------------------------------------
    def _remote(self, f: NDArray, t: NDArray, td: NDArray, ri: NDArray, send: NDArray) -> tuple[NDArray, ...]:
        """Bytes, upload time, upload finish, answer time and on-time flag of sending remote action ``ri``."""
        nbytes = np.where(send, self.remote_bytes[f, ri], 0.0)
        start = np.maximum(td, self.link_free)
        upload = self.bank.transfer_time(self.row, start, nbytes)
        finish = start + upload
        answer = finish + self.rtt_s[ri] + self.compute_s[ri]
        on_time = send & (answer <= t + self.config.deadline_s + 1e-12)
        return nbytes, upload, finish, answer, on_time

    def preview(self) -> dict[str, NDArray]:
        """Hindsight: what each remote action would yield for the current frames, without changing any state.

        Returns ``on_time`` and ``correct`` [B, R + 1] (correct = the remote answer is right), ``bytes`` [B, R + 1],
        ``student_correct`` [B] and ``can_send`` [B] (send buffer not full). Only the hindsight oracle uses it.
        """
        f = self._frame()
        t, td = self._times()
        can_send = self._pending(td) < self.config.max_queue
        on_time = np.zeros((self.num_envs, self.n_remote), bool)
        for j in range(self.n_remote):  # R + 1 small batched evaluations
            on_time[:, j] = self._remote(f, t, td, np.full(self.num_envs, j), can_send)[4]
        return {"on_time": on_time, "correct": self.remote_correct[f], "bytes": self.remote_bytes[f],
                "student_correct": self.student_correct[f], "can_send": can_send}


    def step(self, actions: NDArray) -> tuple[NDArray, NDArray, NDArray, dict[str, NDArray]]:
        """Apply one action per device; returns (reward, terminated, truncated, info arrays)."""
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
            if a.shape == (self.num_envs,) and np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:
                raise ValueError(f"actions must be {self.num_envs} integers in [0, {self.n_actions}), got {actions!r}")
        bad = (a < 0) | (a >= self.n_actions)
        if bad.any():
            raise ValueError(f"invalid action(s) {a[bad].tolist()}: expected integers in [0, {self.n_actions}) "
                             f"meaning {self.spec.action_names}")
        cfg = self.config
        f = self._frame()
        t, td = self._times()
        remote = a > 0
        ri = np.maximum(a - 1, 0)
        refused = remote & (self._pending(td) >= cfg.max_queue)
        send = remote & ~refused
        nbytes, upload, finish, answer, on_time = self._remote(f, t, td, ri, send)
        correct = np.where(on_time, self.remote_correct[f, ri], self.student_correct[f])

        rows = np.flatnonzero(send)
        if rows.size:
            slot = self.issued[rows] % self._ring
            self.fin[rows, slot] = finish[rows]
            self.thr[rows, slot] = nbytes[rows] * 8e-6 / np.maximum(upload[rows], 1e-9)
            self.issued[rows] += 1
            self.link_free[rows] = finish[rows]
        self.ema += cfg.rate_ema * (send - self.ema)
        self.last_action = a.astype(np.int64)
        self.n += 1

        reward = correct - cfg.byte_cost * nbytes / 1e6
        if cfg.reward_baseline == "local":
            reward = reward - self.student_correct[f]
        latency_ms = np.where(on_time, (answer - t) * 1000.0, np.where(send, cfg.deadline_ms, self.student_s * 1000.0))
        info = {"correct": correct, "used_remote": on_time, "late": send & ~on_time, "refused": refused,
                "latency_ms": latency_ms, "bytes": nbytes, "true_mbps": self.bank.mbps_at(self.row, td),
                "action": a, "trace": self.row.copy(), "frame": f}
        truncated = self.n >= cfg.episode_frames
        return reward.astype(np.float64), np.zeros(self.num_envs, bool), truncated, info
