"""The observation: what a real device knows at decision time, turned into one flat float32 vector.

This module is the single definition of the observation, used by the environment and by the device runtime that
runs an exported policy; it imports only NumPy so it can ship to a device as is.

Fields, in order (k = student top-k, H = history length, R = offload resolutions, A = R + 2 actions):

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
| oracle_log_mbps    | 0 / 1 | only with oracle_bandwidth: log10 of the true current throughput, /2            | [-1, 1]  |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

LOG_MBPS_FLOOR = 0.01  # 10 kbit/s: log features bottom out here (outages)
KB_SCALE = 32.0
SINCE_SCALE_S = 10.0


@dataclass(frozen=True)
class ObservationSpec:
    """Shape of the observation: how many of each field, plus the timing constants the slack features use."""

    top_k: int
    history: int
    resolutions: tuple[int, ...]
    deadline_s: float
    remote_rtt_s: tuple[float, ...]  # per remote action (R resolutions, then teacher)
    remote_compute_s: tuple[float, ...]
    max_queue: int
    prior_mbps: float
    oracle_bandwidth: bool = False

    @property
    def n_actions(self) -> int:
        return len(self.resolutions) + 2

    @property
    def action_names(self) -> list[str]:
        return ["local", *[f"offload@{r}" for r in self.resolutions], "teacher"]

    @property
    def field_names(self) -> list[str]:
        remote = self.action_names[1:]
        names = [f"top{i + 1}_prob" for i in range(self.top_k)] + ["margin", "entropy"]
        names += [f"meas{j + 1}_log_mbps" for j in range(self.history)]
        names += ["meas_count", "est_log_mbps", "backlog", "pending", "since_meas", "offload_rate"]
        names += [f"last_action_{a}" for a in self.action_names]
        names += [f"size_{a}_kb" for a in remote] + [f"slack_{a}" for a in remote]
        return names + (["oracle_log_mbps"] if self.oracle_bandwidth else [])

    @property
    def dim(self) -> int:
        return len(self.field_names)

    def bounds(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Per-field (low, high) of the observation box."""
        table = {"margin": (0, 1), "entropy": (0, 1), "meas_count": (0, 1), "est_log_mbps": (-1, 1),
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
            else:  # probabilities and one-hots
                a, b = 0, 1
            lo.append(a)
            hi.append(b)
        return np.array(lo, np.float32), np.array(hi, np.float32)


def _log_feature(mbps: NDArray) -> NDArray:
    return np.clip(np.log10(np.maximum(mbps, LOG_MBPS_FLOOR)) / 2.0, -1.0, 1.0)


def throughput_estimate(meas_mbps: NDArray, n_meas: NDArray, prior_mbps: float) -> NDArray[np.float64]:
    """Harmonic mean of the valid measurements (newest first in ``meas_mbps``), or the prior when none."""
    h = meas_mbps.shape[1]
    valid = np.arange(h)[None, :] < np.asarray(n_meas)[:, None]
    inv = np.where(valid, 1.0 / np.maximum(meas_mbps, 1e-6), 0.0).sum(1)
    n = valid.sum(1)
    return np.where(n > 0, n / np.maximum(inv, 1e-12), prior_mbps)


def confidence_features(topk_prob: NDArray) -> NDArray[np.float64]:
    """[B, k + 2]: the top-k probabilities, the margin and the normalised entropy of (top-k, rest)."""
    p = np.asarray(topk_prob, np.float64)
    k = p.shape[1]
    rest = np.clip(1.0 - p.sum(1), 0.0, 1.0)
    ent = -(np.where(p > 0, p * np.log(np.maximum(p, 1e-12)), 0.0).sum(1)
            + np.where(rest > 0, rest * np.log(np.maximum(rest, 1e-12)), 0.0)) / np.log(k + 1)
    margin = p[:, 0] - (p[:, 1] if k > 1 else 0.0)
    return np.concatenate([p, margin[:, None], np.clip(ent, 0, 1)[:, None]], axis=1)


def build_observation(spec: ObservationSpec, topk_prob: NDArray | None, remote_kb: NDArray, meas_mbps: NDArray,
                      n_meas: NDArray, backlog_s: NDArray, pending: NDArray, since_meas_s: NDArray,
                      offload_rate: NDArray, last_action: NDArray, true_mbps: NDArray | None = None,
                      conf_features: NDArray | None = None) -> NDArray[np.float32]:
    """Observations for a batch of B devices from their raw signals.

    Args:
        topk_prob: [B, k] calibrated top-k probabilities, descending (or None with ``conf_features``).
        conf_features: [B, k + 2] ``confidence_features(topk_prob)`` when already computed (the env caches them).
        remote_kb: [B, R + 1] this frame's JPEG size in kB for each remote action.
        meas_mbps: [B, H] measured throughputs of completed uploads, newest first (entries past n_meas ignored).
        n_meas: [B] how many measurements are valid (0..H).
        backlog_s: [B] seconds until the uplink is free. pending: [B] uploads in flight.
        since_meas_s: [B] seconds since the last completed upload. offload_rate: [B] EMA of offloading.
        last_action: [B] previous action (0 at episode start). true_mbps: [B], only with oracle_bandwidth.
    """
    conf = confidence_features(topk_prob) if conf_features is None else conf_features
    b = conf.shape[0]
    h = spec.history
    n_meas = np.asarray(n_meas)
    est = throughput_estimate(meas_mbps, n_meas, spec.prior_mbps)
    valid = np.arange(h)[None, :] < n_meas[:, None]
    meas = np.where(valid, meas_mbps, est[:, None])
    remote_kb = np.asarray(remote_kb, np.float64)
    backlog_s = np.asarray(backlog_s, np.float64)
    expected = (backlog_s[:, None] + remote_kb * 8e-3 / est[:, None]
                + np.asarray(spec.remote_rtt_s)[None, :] + np.asarray(spec.remote_compute_s)[None, :])
    slack = np.clip((spec.deadline_s - expected) / spec.deadline_s, -5.0, 1.0)
    onehot = np.zeros((b, spec.n_actions))
    onehot[np.arange(b), np.asarray(last_action)] = 1.0
    cols = [conf, _log_feature(meas),
            (n_meas / h)[:, None], _log_feature(est)[:, None],
            np.clip(backlog_s / spec.deadline_s, 0, 10)[:, None],
            np.clip(np.asarray(pending) / spec.max_queue, 0, 1)[:, None],
            np.clip(np.asarray(since_meas_s) / SINCE_SCALE_S, 0, 1)[:, None],
            np.asarray(offload_rate, np.float64)[:, None], onehot,
            np.clip(remote_kb / KB_SCALE, 0, 10), slack]
    if spec.oracle_bandwidth:
        if true_mbps is None:
            raise ValueError("oracle_bandwidth observation needs true_mbps")
        cols.append(_log_feature(np.asarray(true_mbps))[:, None])
    return np.concatenate(cols, axis=1).astype(np.float32)
