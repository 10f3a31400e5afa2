"""``EnvConfig``: every constant of the offloading environment, frozen and validated on construction."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

Split = Literal["train", "test", "all"]

# Measured on the live pipeline (``train_agent.py live``: the device controller, the paced loopback uplink and the edge
# server as real processes; issue 22), with ``--slowdown auto``: this project's 2-core machine runs the int8 student
# 4.95x slower than the machine the profile's latencies were measured on (6.33 vs 1.28 ms), so time was dilated by
# that factor and every measured time counts as on the profile's machine. There the device loop took 4.6 ms per frame
# (median) from capture to decision, of which the student is the profile's 1.28 ms, and each answer came back 1.1 ms
# (median) later than upload + round trip + the server's own reported time (whose model call, 5.0 ms, matched the
# profile's compute).
DEVICE_MS = 3.3  # the device's work after the student, before it decides
REQUEST_MS = 1.1  # per remote answer: the HTTP request's framing and both ends' event loops
V1_TIMING = {"device_ms": 0.0, "request_ms": 0.0}  # the env's timing before these were measured (v1)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class EnvConfig:
    """Constants of the frame-offloading environment.

    Why these defaults. Frames arrive at the profile's frame rate (15 fps for the default profile: scenes of
    seconds, as video analytics samples them) with a 200 ms deadline each; offloads share one FIFO uplink. At the
    traces' median throughput (about 1 Mbit/s) the link carries ~8.3 kB per frame interval, while a frame's JPEG is
    ~3.5 / 6.1 / 9.3 / 12.8 kB at the four offload resolutions and ~29 kB in full for the teacher. So sending every
    frame at the middle resolutions saturates a median link, a slow link (p10 ~0.5 Mbit/s) carries a third of
    that, and the teacher makes its deadline only when the link is fast and idle: the regime in which choosing
    *which* frames to send, at what size, and when an answer already held is still good, matters. Edge RTT 30 ms
    and cloud (teacher) RTT 80 ms are typical LTE and wide-area values.
    Server and teacher compute times are the batch-1 latencies measured when the profile was built (ONNX Runtime
    on a CPU), scaled by ``compute_scale`` (set < 1 to model a GPU server). The device decides ``student_ms +
    device_ms`` after capture: besides the int8 student it computes the calibrated top-k, the embedding, the
    distilled head, one JPEG per remote action and the policy, and on the live pipeline (emulating the profile's
    machine) that whole loop took 4.6 ms (median), not the student's 1.3 ms; every remote answer also costs
    ``request_ms`` beyond the upload, the round trip and the model (the HTTP request on both ends), 1.1 ms there.

    Attributes:
        fps: frame rate of the camera. None (default): the profile's ``meta["fps"]`` (30 for profiles without
            it); an explicit value must equal it, since playing frames at another rate than they were rendered
            at would fake the scenes' durations.
        deadline_ms: time from a frame's capture by which its answer must be back.
        episode_frames: frames per episode (the episode is truncated after them).
        edge_rtt_ms / cloud_rtt_ms: network round trip to the edge server / to the teacher, beyond the upload.
        compute_scale: multiplies the profile's measured server and teacher compute times.
        student_ms: on-device inference time of the student; None uses the profile's measured int8 latency.
        device_ms: the rest of the device's work before it decides (features, JPEG encodes, policy); a frame's
            decision comes ``student_ms + device_ms`` after its capture.
        request_ms: per remote answer, time beyond upload, round trip and compute (request framing, event loops).
        byte_cost: reward penalty per megabyte sent (0: pure accuracy).
        reward_baseline: ``"none"`` (reward = 1 if the answer used is correct) or ``"local"`` (minus whether the
            local answer would have been correct). The local answer's correctness does not depend on the action,
            so the optimal policy is the same; for training, "local" removes most of the reward's noise.
        history: number of past upload throughput measurements in the observation.
        max_queue: uploads the device's send buffer holds; an offload when it is full is not sent (local answer).
        rate_ema: smoothing factor of the recent-offload-rate feature.
        prior_mbps: throughput assumed before the first measurement of an episode.
        oracle_bandwidth: add the trace's true current throughput to the observation (ablations only).
        temporal_observation: add the student's recent history to the observation (``top1_stable``, ``pmax_ema``:
            ``offload_common.observation``); ablations only until the device runtime computes it.
        profile_split / trace_split: which side of the scene split and of the trace split the env replays.
        test_fraction / split_seed: how both splits are drawn (by scene and by trace file).
        trace_families: families to use (None: all); a single string is one family name (``"fcc"`` means
            ``("fcc",)``, never the letters f, c, c); skip_downlink: drop Mahimahi ``.down`` traces (offloads go up).
    """

    fps: float | None = None
    deadline_ms: float = 200.0
    episode_frames: int = 300
    edge_rtt_ms: float = 30.0
    cloud_rtt_ms: float = 80.0
    compute_scale: float = 1.0
    student_ms: float | None = None
    device_ms: float = DEVICE_MS
    request_ms: float = REQUEST_MS
    byte_cost: float = 0.0
    reward_baseline: Literal["none", "local"] = "none"
    history: int = 4
    max_queue: int = 16
    rate_ema: float = 0.1
    prior_mbps: float = 1.0
    oracle_bandwidth: bool = False
    temporal_observation: bool = False
    profile_split: Split = "train"
    trace_split: Split = "train"
    test_fraction: float = 0.3
    split_seed: int = 0
    trace_families: tuple[str, ...] | None = None
    skip_downlink: bool = True

    def __post_init__(self) -> None:
        def need(cond: bool, name: str, expected: str) -> None:
            if not cond:
                raise ValueError(f"EnvConfig.{name}={getattr(self, name)!r}: expected {expected}")

        if isinstance(self.trace_families, str):  # one family name, not an iterable of letters
            object.__setattr__(self, "trace_families", (self.trace_families,))
        elif self.trace_families is not None:
            try:
                object.__setattr__(self, "trace_families", tuple(self.trace_families))
            except TypeError:
                need(False, "trace_families", "None, a family name, or a sequence of family names")
            need(all(isinstance(f, str) for f in self.trace_families), "trace_families",
                 "None, a family name, or a sequence of family names")
        for f in fields(self):  # types first, so that the range checks below compare numbers with numbers
            value = getattr(self, f.name)
            expected = _FIELD_TYPES[f.name]
            ok = {"number": _is_number(value), "int": _is_int(value), "bool": isinstance(value, (bool, np.bool_)),
                  "str": isinstance(value, str), "number or None": value is None or _is_number(value),
                  "families": value is None or isinstance(value, tuple)}[expected]
            need(ok, f.name, {"number": "a number", "int": "an int", "bool": "True or False", "str": "a string",
                              "number or None": "None or a number", "families": "None or family names"}[expected])
        need(self.fps is None or self.fps > 0, "fps", "None (the profile's) or > 0")
        need(self.deadline_ms > 0, "deadline_ms", "> 0")
        need(self.episode_frames >= 1, "episode_frames", "an int >= 1")
        need(self.edge_rtt_ms >= 0, "edge_rtt_ms", ">= 0")
        need(self.cloud_rtt_ms >= 0, "cloud_rtt_ms", ">= 0")
        need(self.compute_scale >= 0, "compute_scale", ">= 0")
        need(self.student_ms is None or self.student_ms >= 0, "student_ms", "None or >= 0")
        need(self.device_ms >= 0, "device_ms", ">= 0")
        need(self.request_ms >= 0, "request_ms", ">= 0")
        need(self.byte_cost >= 0, "byte_cost", ">= 0")
        need(self.reward_baseline in ("none", "local"), "reward_baseline", "'none' or 'local'")
        need(self.history >= 1, "history", "an int >= 1")
        need(self.max_queue >= 1, "max_queue", "an int >= 1")
        need(0 < self.rate_ema <= 1, "rate_ema", "in (0, 1]")
        need(self.prior_mbps > 0, "prior_mbps", "> 0")
        need(self.profile_split in ("train", "test", "all"), "profile_split", "'train', 'test' or 'all'")
        need(self.trace_split in ("train", "test", "all"), "trace_split", "'train', 'test' or 'all'")
        need(0 < self.test_fraction < 1, "test_fraction", "in (0, 1)")

    @property
    def deadline_s(self) -> float:
        return self.deadline_ms / 1000.0

    def replace(self, **changes: Any) -> EnvConfig:
        """A copy with some fields changed (validated again)."""
        return EnvConfig(**{**asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["trace_families"] is not None:
            d["trace_families"] = list(d["trace_families"])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvConfig:
        """Rebuild from ``to_dict`` output; unknown keys are an error naming them. ``device_ms`` and ``request_ms``
        missing (a record of v1, before they existed) mean 0, the timing that record's env had."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown EnvConfig fields {sorted(unknown)}; known: {sorted(known)}")
        d = {**V1_TIMING, **data}  # a record without them was written before v2: the device loop and requests cost 0
        if d.get("trace_families") is not None:
            d["trace_families"] = tuple(d["trace_families"])
        return cls(**d)


# the form each field must have (checked before its range); every EnvConfig field has an entry
_FIELD_TYPES = {
    "fps": "number or None", "deadline_ms": "number", "episode_frames": "int", "edge_rtt_ms": "number",
    "cloud_rtt_ms": "number", "compute_scale": "number", "student_ms": "number or None", "device_ms": "number",
    "request_ms": "number", "byte_cost": "number",
    "reward_baseline": "str", "history": "int", "max_queue": "int", "rate_ema": "number", "prior_mbps": "number",
    "oracle_bandwidth": "bool", "temporal_observation": "bool", "profile_split": "str", "trace_split": "str", "test_fraction": "number",
    "split_seed": "int", "trace_families": "families", "skip_downlink": "bool",
}
