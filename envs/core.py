"""The one dynamics core behind all three environments (the single env is batch size 1), so they cannot drift.

Per frame n of an episode on trace ``trace``, captured at t = start_s + n / fps: the device runs its student and
the rest of its loop (student_s: ``EnvConfig.student_ms + device_ms``), then acts at td = t + student_s. An offload
waits for the FIFO uplink (start = max(td, link_free)), takes ``Trace.transfer_time(start, bytes)`` to upload, then
the round trip and the answer's time: the model's compute plus the per-request overhead (``request_ms``). The answer
counts if it is back by t + deadline; otherwise the local answer is used (the bytes were spent, the link stayed
busy). Each completed upload yields a throughput measurement (bytes / upload time) that the device sees once it
completed. The step itself is compiled (``envs.kernel``); this module derives its constants once from the profile,
traces and ``EnvConfig`` (gymnax-style: ``Tables`` are the params, ``EnvState`` the state) and raises the errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bandwidth_traces import Trace
from bandwidth_traces import split as split_traces
from offload_common.observation import ObservationSpec, action_mask, observation_constants
from perception import FrameProfile

from . import kernel
from .config import EnvConfig
from .frame_table import frame_table

DEFAULT_FPS = 30.0  # profiles written before meta["fps"] existed were rendered at 30 fps


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
    """The scenes an env with ``config`` replays (by-scene split; calibration scenes stay on the train side)."""
    if config.profile_split == "all":
        return profile
    train, test = profile.split(config.test_fraction, config.split_seed)
    return train if config.profile_split == "train" else test


def profile_fps(profile: FrameProfile, config: EnvConfig) -> float:
    """The frame rate episodes play at: the profile's (``meta["fps"]``, 30 when absent); ``config.fps`` must agree."""
    rendered = float(profile.meta.get("fps", DEFAULT_FPS))
    if config.fps is not None and config.fps != rendered:
        raise ValueError(f"EnvConfig.fps={config.fps} differs from the profile's fps={rendered}: playing frames at "
                         f"another rate than they were rendered at would fake the scenes' durations "
                         f"(leave fps=None to use the profile's)")
    return rendered


def scene_table(scene: NDArray) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(first frame, length) of each scene: the runs of equal ``scene`` ids (the profile stores scenes contiguously)."""
    scene = np.asarray(scene)
    if scene.size == 0:
        raise ValueError("the profile has no frames")
    start = np.flatnonzero(np.r_[True, scene[1:] != scene[:-1]])
    return start.astype(np.int64), np.diff(np.r_[start, scene.size]).astype(np.int64)


def _latencies_s(profile: FrameProfile, config: EnvConfig) -> tuple[NDArray, NDArray, float]:
    """Round trip and answer seconds per remote action (R resolutions, teacher), and the decision's delay after
    capture. An answer's time beyond the round trip is the model's compute (the profile's, x ``compute_scale``)
    plus the per-request overhead ``request_ms``; the decision comes after the student and the rest of the device
    loop (``device_ms``)."""
    lat = profile.meta.get("latency_ms", {})
    res = profile.resolutions
    teacher_key = next((k for k in lat if k.startswith("teacher@")), None)
    compute_ms = [lat.get(f"server@{x}", 0.0) for x in res] + [lat.get(teacher_key, 0.0) if teacher_key else 0.0]
    compute_s = (np.array(compute_ms) * config.compute_scale + config.request_ms) / 1000.0
    rtt_s = np.array([config.edge_rtt_ms] * len(res) + [config.cloud_rtt_ms]) / 1000.0
    student_key = next((k for k in lat if k.startswith("student_int8@")), None)
    student_ms = (config.student_ms if config.student_ms is not None
                  else lat.get(student_key, 0.0) if student_key else 0.0)
    return rtt_s, compute_s, (student_ms + config.device_ms) / 1000.0


def observation_spec(profile: FrameProfile, config: EnvConfig) -> ObservationSpec:
    """The ``ObservationSpec`` of an env over ``profile`` (the profile of the scenes it replays) with ``config``:
    the one derivation, used by the env and by whoever must rebuild an env's timing (the live run's simulator)."""
    rtt_s, compute_s, _ = _latencies_s(profile, config)
    return ObservationSpec(
        top_k=profile.top_k, history=config.history, resolutions=profile.resolutions, deadline_s=config.deadline_s,
        remote_rtt_s=tuple(rtt_s.tolist()), remote_compute_s=tuple(compute_s.tolist()),
        max_queue=config.max_queue, prior_mbps=config.prior_mbps, oracle_bandwidth=config.oracle_bandwidth,
        temporal=config.temporal_observation)


def decision_seconds(profile: FrameProfile, config: EnvConfig) -> float:
    """Seconds from a frame's capture to the device's decision (student + the rest of the device loop)."""
    return _latencies_s(profile, config)[2]


def _pack_traces(traces: Sequence[Trace]) -> dict[str, NDArray]:
    """The traces concatenated for the kernel (each keeps its own segments; cumulative bits get a closing entry)."""
    sizes = np.array([t.times_s.size for t in traces], np.int64)
    return {"trace_segments": np.stack([np.concatenate([t.times_s for t in traces]),
                                        np.concatenate([t.mbps for t in traces])], 1),
            "trace_cum_bits": np.concatenate([np.append(t.cumulative_bits(t.times_s), t.total_bits) for t in traces]),
            "trace_index": np.stack([np.r_[0, np.cumsum(sizes)[:-1]], sizes], 1).astype(np.int64),
            "trace_period": np.stack([[t.duration_s for t in traces], [t.total_bits for t in traces]], 1)}


class OffloadDynamics:
    """State and compiled step of B independent devices; the three env classes are thin protocols over it."""

    def __init__(self, num_envs: int, profile: FrameProfile, traces: Sequence[Trace], config: EnvConfig):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.config = config
        self.num_envs = b = int(num_envs)
        if profile.embedding is None or profile.distilled is None:
            raise ValueError("the frame profile has no embedding or distilled predictions (profile format 1): the "
                             "observation needs both; rebuild it with `python train_agent.py profile -o PATH`")
        prof = select_profile(profile, config)
        self.traces = select_traces(traces, config)
        self.profile = prof
        self.fps = profile_fps(profile, config)
        self.scene_start, self.scene_len = scene_table(prof.scene)

        self.spec = observation_spec(prof, config)
        self.student_s = student_s = decision_seconds(prof, config)
        frames, self.columns = frame_table(prof)
        params = np.zeros(1, kernel.PARAMS)
        values = {"frame_s": 1.0 / self.fps, "deadline_s": config.deadline_s, "deadline_ms": config.deadline_ms,
                  "student_s": student_s, "byte_cost": config.byte_cost, "rate_ema": config.rate_ema,
                  "max_queue": config.max_queue, "episode_frames": config.episode_frames,
                  "n_conf": self.columns["conf"].stop - self.columns["conf"].start, "top_k": prof.top_k,
                  "n_actions": self.spec.n_actions,
                  **{f"col_{group}": columns.start for group, columns in self.columns.items()},
                  "local_baseline": config.reward_baseline == "local", "oracle_bandwidth": config.oracle_bandwidth}
        assert set(values) == set(kernel.PARAMS.names), "every PARAMS field is derived here"
        for name, value in values.items():
            params[name] = value
        emb = prof.embedding.astype(np.float64)
        embedding = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        self.tables = kernel.Tables(
            params=params, frames=frames, embedding=embedding,
            remote_times=np.array([self.spec.remote_rtt_s, self.spec.remote_compute_s], np.float64),
            obs_consts=observation_constants(self.spec)[1], scenes=np.stack([self.scene_start, self.scene_len], 1),
            **_pack_traces(self.traces))
        self._kernel_tables = tuple(self.tables)
        # ring of uploads: all in flight plus the H newest completed; pieces: at worst one frame each
        self.state = kernel.EnvState.zeros(b, config.history + config.max_queue, config.episode_frames + 1)
        self._kernel_state = tuple(self.state)
        self.buffers = kernel.Buffers.zeros(b, self.spec.dim, config.history)
        self._kernel_buffers = tuple(self.buffers)
        self.seed_rows(np.arange(b), [None] * b)

    @property
    def n_actions(self) -> int:
        return self.spec.n_actions

    # ---- episodes --------------------------------------------------------------------------------------------
    def seed_rows(self, rows: Sequence[int], seeds: Sequence[int | np.random.Generator | None]) -> None:
        """Give each device in ``rows`` its random stream: from an int seed, a NumPy generator, or fresh entropy.

        A device's stream is keyed by one draw of ``numpy.random.default_rng(seed)`` (Gymnasium's ``np_random``),
        so a sub-env seeded with s replays what ``OffloadEnv.reset(seed=s)`` gives.
        """
        for i, seed in zip(rows, seeds):
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            self.state.device["rng"][i] = np.uint64(rng.integers(0, 2 ** 63))

    def reset_rows(self, rows: Sequence[int] | NDArray) -> None:
        """Start new episodes in ``rows``, each drawn from the device's own stream (trace, start, scene pieces)."""
        kernel.draw_episodes(self._kernel_state, self._kernel_tables, np.asarray(rows, np.int64))

    def pin_episode(self, row: int, trace: int | None = None, start_s: float | None = None,
                    pieces: Sequence[Sequence[int]] | None = None, scenes: Sequence[int] | None = None) -> None:
        """Restart device ``row``'s episode with parts pinned: trace index, start offset (s), and scene pieces
        ((scene, first frame, length) triples) or whole ``scenes``; pieces repeat if they cover too few frames."""
        device = self.state.device
        if trace is not None:
            if not 0 <= int(trace) < len(self.traces):
                raise ValueError(f"episode trace index {trace} out of range [0, {len(self.traces)})")
            device["trace"][row] = int(trace)
        if start_s is not None:
            if not np.isfinite(start_s):
                raise ValueError(f"episode start_s must be finite, got {start_s!r}")
            device["start_s"][row] = float(start_s)
        if scenes is not None:
            if pieces is not None:
                raise ValueError("pin either pieces or scenes, not both")
            s = np.asarray(scenes, np.int64).reshape(-1)
            if s.size == 0 or (s < 0).any() or (s >= len(self.scene_len)).any():
                raise ValueError(f"episode scenes must be indices in [0, {len(self.scene_len)}), got {scenes!r}")
            pieces = np.stack([s, np.zeros_like(s), self.scene_len[s]], 1)
        if pieces is not None:
            self._write_pieces(row, np.asarray(pieces, np.int64))
        kernel.begin_episodes(self._kernel_state, np.array([row], np.int64))

    def _write_pieces(self, row: int, p: NDArray[np.int64]) -> None:
        n_scenes = len(self.scene_len)
        if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0:
            raise ValueError(f"episode pieces must be (scene, first frame, length) triples, got shape {p.shape}")
        scene, first, length = p.T
        ok = (scene >= 0) & (scene < n_scenes)
        ok &= (first >= 0) & (length >= 1) & (first + length <= self.scene_len[np.where(ok, scene, 0)])
        if not ok.all():
            raise ValueError(f"episode piece {p[~ok][0].tolist()} is not within its scene "
                             f"({n_scenes} scenes; a piece is (scene, first frame, length))")
        need = self.config.episode_frames + 1
        keep = int(np.searchsorted(np.cumsum(length), need)) + 1  # the pieces that cover the episode
        p = p[:keep]
        self.state.pieces[row, :len(p)] = p
        self.state.device["n_pieces"][row] = len(p)

    def episode(self, row: int) -> dict[str, Any]:
        """Device ``row``'s current episode as ``pin_episode`` takes it: trace, start_s, pieces [n, 3]."""
        d = self.state.device[row]
        return {"trace": int(d["trace"]), "start_s": float(d["start_s"]),
                "pieces": self.state.pieces[row, :int(d["n_pieces"])].copy()}

    # ---- stepping ---------------------------------------------------------------------------------------------
    def observe(self) -> NDArray[np.float32]:
        """All devices' observations at their current decision time (a buffer the next call overwrites)."""
        kernel.observe(self._kernel_state, self._kernel_tables, self._kernel_buffers, 0, self.num_envs)
        return self.buffers.obs

    def action_masks(self) -> NDArray[np.bool_]:
        """[B, A]: which actions can take effect for each device now (``offload_common.observation.action_mask``:
        no send into a full buffer, no reuse without a cached answer), read off the current observations."""
        return action_mask(self.spec, self.observe())

    def step(self, actions: NDArray[np.int64], autoreset: int = kernel.NO_AUTORESET) -> kernel.Buffers:
        """One frame for every device (``actions``: int64 [B]); the returned buffers are overwritten next step:
        ``obs`` and ``out`` (``kernel.STEP`` records: reward, flags, info), ``final_obs`` with SAME_STEP.

        Raises a ValueError for an invalid action and a RuntimeError for a device that needs ``reset`` first.
        """
        code, row = kernel.step(self._kernel_state, self._kernel_tables, self._kernel_buffers, actions, autoreset)
        if code != kernel.OK:
            self.raise_step_error(code, row, actions)
        return self.buffers

    def step_args(self, actions: NDArray[np.int64], autoreset: int) -> tuple:
        """``kernel.step``'s arguments for a fixed actions buffer: the single env's hot path calls the kernel with
        them directly (saving a Python call per step) and hands a non-OK result to ``raise_step_error``."""
        return self._kernel_state, self._kernel_tables, self._kernel_buffers, actions, autoreset

    def raise_step_error(self, code: int, row: int, actions: NDArray) -> None:
        """The exception for ``kernel.step``'s return code (nothing changed in the kernel)."""
        where = f" (env {row})" if self.num_envs > 1 else ""
        if code == kernel.BAD_ACTION:
            raise ValueError(f"invalid action {actions[row].item()!r}{where}: expected an integer in [0, {self.n_actions}) "
                             f"meaning {self.spec.action_names}")
        if code == kernel.NOT_RESET:
            raise RuntimeError(f"step() called before reset(){where}: call reset() to start an episode")
        raise RuntimeError(f"the episode is over{where} (truncated after {self.config.episode_frames} frames): "
                           f"call reset() before stepping again")

    def as_actions(self, actions: Any) -> NDArray[np.int64]:
        """``actions`` as the kernel's int64 [B]; integral floats are accepted, anything else is a clear error."""
        a = np.asarray(actions)
        if a.size == self.num_envs:
            a = a.reshape(self.num_envs)  # SB3 passes [B, 1] for Discrete
        integral = np.issubdtype(a.dtype, np.integer) or (np.issubdtype(a.dtype, np.floating)
                                                          and bool(np.all(a == np.round(a))))
        if a.shape != (self.num_envs,) or not integral:
            raise ValueError(f"actions must be {self.num_envs} integers in [0, {self.n_actions}), got {actions!r}")
        return a.astype(np.int64, copy=False)

    # ---- what the device and the oracle know --------------------------------------------------------------------
    def preview(self) -> dict[str, NDArray]:
        """Hindsight: what each remote action would yield for the current frames, without changing any state.

        Returns ``on_time`` and ``correct`` [B, R + 1] (correct = the remote answer is right), ``bytes`` [B, R + 1],
        ``student_correct`` [B], ``can_send`` [B] (send buffer not full), ``reuse_correct`` [B] (a cached answer is
        held and it is this frame's label), ``pending`` [B] (uploads in flight) and ``answer_delay_s`` [B, R + 1]
        (seconds from capture until the remote answer would be back if sent now, from the true trace and queue;
        meaningful only where ``can_send``). Only the reference policies use it.
        """
        b = self.num_envs
        on_time = np.zeros((b, self.spec.n_actions - 2), bool)
        can_send = np.zeros(b, bool)
        reuse_correct = np.zeros(b, bool)
        pending = np.zeros(b, np.int64)
        delay = np.zeros(on_time.shape, np.float64)
        kernel.preview(self._kernel_state, self._kernel_tables, on_time, can_send, reuse_correct, pending, delay)
        f = self.device_signals()["frame"]
        correct = self.tables.frames[f, self.columns["correct"]] > 0
        return {"on_time": on_time, "correct": correct[:, 1:], "bytes": self.tables.frames[f, self.columns["bytes"]],
                "student_correct": correct[:, 0], "can_send": can_send, "reuse_correct": reuse_correct,
                "pending": pending, "answer_delay_s": delay}

    def device_signals(self) -> dict[str, NDArray]:
        """What each device knows at its current decision time, as ``offload_common.observation.build_observation``'s inputs.

        ``topk_prob`` [B, k], ``remote_kb`` [B, R + 1], ``dist`` [B, R + 2], ``meas_mbps`` [B, H], ``signals`` [B]
        ``SIGNALS``, plus ``frame`` (profile index). Copies, so they stay valid after the next step.
        """
        self.observe()
        f = self.buffers.frame.copy()
        return {"frame": f, "topk_prob": self.profile.student_topk_prob[f],
                "remote_kb": self.tables.frames[f, self.columns["remote_kb"]],
                "dist": self.tables.frames[f, self.columns["dist"]],
                "meas_mbps": self.buffers.meas_mbps.copy(), "signals": self.buffers.signals.copy()}
