"""The compiled dynamics: one Numba kernel steps B devices (B = 1 for ``OffloadEnv``), observation included.

Why Numba (``njit(cache=True)``): the dynamics are scalar branches per device (queue, one trace lookup, a deadline
test) that NumPy could only express as ~150 whole-array calls per step; the same loop compiled is a few hundred
nanoseconds per device, for batch 1 and batch N alike, with no second implementation. ``cache=True`` writes the
machine code next to this file, so only the first import on a machine pays the compile. The observation is
``envs.features.observation_into`` compiled here as is; the device runtime runs that same source uncompiled.

Layout, all defined in this module:
  * ``STATE``: one record per device (episode, uplink, behaviour, its own random stream). A new per-device field
    is one line in ``STATE`` and, if it needs a start value other than 0, one line in ``_begin_episode``.
  * ``EnvState``: the ``STATE`` records plus the per-device arrays whose length depends on the config (upload
    ring, the episode's scene pieces).
  * ``Tables``: everything fixed for the env's lifetime (``PARAMS`` record, per-frame profile tables, scenes,
    packed traces), built once by ``envs.core``.
  * ``Buffers``: what a step writes (observation, reward, flags, ``INFO`` records) plus the signal scratch.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from .features import SIGNALS, observation_into

# status of a device's episode
NOT_STARTED, RUNNING, OVER = 0, 1, 2
# autoreset modes of ``step``
NO_AUTORESET, NEXT_STEP, SAME_STEP = 0, 1, 2
# ``step``'s return codes
OK, BAD_ACTION, NOT_RESET, EPISODE_OVER = 0, 1, 2, 3

STATE = np.dtype([
    ("status", np.int64),        # NOT_STARTED, RUNNING or OVER
    ("rng", np.uint64),          # SplitMix64 state: this device's own stream of episodes
    ("trace", np.int64),         # index of the episode's trace in the env's traces
    ("start_s", np.float64),     # episode start offset into the trace
    ("step", np.int64),          # frames decided so far in this episode
    ("n_pieces", np.int64),      # scene pieces of the episode (in EnvState.pieces)
    ("piece", np.int64),         # current piece
    ("offset", np.int64),        # frame within the current piece
    ("link_free_s", np.float64),  # when the uplink finishes its last accepted upload
    ("issued", np.int64),        # uploads sent this episode (the ring slot of the next is issued % ring)
    ("offload_ema", np.float64),  # EMA of "this frame was offloaded"
    ("last_action", np.int64),   # previous action (0 at episode start)
])

PARAMS = np.dtype([
    ("frame_s", np.float64), ("deadline_s", np.float64), ("deadline_ms", np.float64),
    ("student_s", np.float64), ("byte_cost", np.float64), ("local_baseline", np.bool_),
    ("rate_ema", np.float64), ("max_queue", np.int64), ("episode_frames", np.int64),
    ("oracle_bandwidth", np.bool_),
])

INFO = np.dtype([
    ("correct", np.bool_), ("used_remote", np.bool_), ("late", np.bool_), ("refused", np.bool_),
    ("latency_ms", np.float64), ("bytes", np.float64), ("true_mbps", np.float64), ("action", np.int64),
    ("trace", np.int64), ("frame", np.int64),
])


class EnvState(NamedTuple):
    """Mutable state of B devices (passed to the kernel as a plain tuple, in this order)."""

    device: NDArray          # [B] STATE records
    upload_finish: NDArray   # [B, P] finish time of the P most recent uploads (ring; -inf: none)
    upload_mbps: NDArray     # [B, P] their measured throughput
    pieces: NDArray          # [B, max_pieces, 3] (scene, first frame in the scene, length) of each piece

    @classmethod
    def zeros(cls, num_envs: int, ring: int, max_pieces: int) -> "EnvState":
        return cls(np.zeros(num_envs, STATE), np.full((num_envs, ring), -np.inf), np.zeros((num_envs, ring)),
                   np.zeros((num_envs, max_pieces, 3), np.int64))


class Tables(NamedTuple):
    """Constants of one env, in the order the kernel unpacks them."""

    params: NDArray           # [1] PARAMS record
    conf: NDArray             # [N, k + 2] confidence features per profile frame
    remote_kb: NDArray        # [N, R + 1] JPEG kB per remote action
    remote_bytes: NDArray     # [N, R + 1]
    remote_correct: NDArray   # [N, R + 1] bool
    student_correct: NDArray  # [N] bool
    remote_times: NDArray     # [2, R + 1] round trip (row 0) and compute (row 1) seconds per remote action
    obs_consts: NDArray       # [4] envs.features.observation_constants
    scene_start: NDArray      # [S] first profile frame of each scene
    scene_len: NDArray        # [S] its number of frames
    trace_times: NDArray      # all traces' segment starts, concatenated
    trace_mbps: NDArray       # their throughputs
    trace_cum_bits: NDArray   # bits deliverable up to each segment start, plus the period's total, per trace
    trace_first: NDArray      # [T] index of each trace's first segment in trace_times
    trace_segments: NDArray   # [T] its number of segments
    trace_duration: NDArray   # [T] period (s)
    trace_period_bits: NDArray  # [T] bits per period


class Buffers(NamedTuple):
    """Outputs of ``step`` / ``observe`` and their scratch, allocated once per env."""

    obs: NDArray          # [B, D] float32
    final_obs: NDArray    # [B, D] float32: SAME_STEP autoreset's observation of the ended episode
    reward: NDArray       # [B]
    terminated: NDArray   # [B] bool
    truncated: NDArray    # [B] bool
    stepped: NDArray      # [B] bool: False where NEXT_STEP autoreset started a new episode instead
    info: NDArray         # [B] INFO records
    frame: NDArray        # [B] current profile frame
    meas_mbps: NDArray    # [B, H] measurement history, newest first
    signals: NDArray      # [B] SIGNALS records

    @classmethod
    def zeros(cls, num_envs: int, dim: int, history: int) -> "Buffers":
        b = num_envs
        return cls(np.zeros((b, dim), np.float32), np.zeros((b, dim), np.float32), np.zeros(b),
                   np.zeros(b, bool), np.zeros(b, bool), np.zeros(b, bool), np.zeros(b, INFO),
                   np.zeros(b, np.int64), np.zeros((b, history)), np.zeros(b, SIGNALS))


jit = numba.njit(cache=True, nogil=True)
_observation_into = jit(observation_into)

# ---- random stream: SplitMix64 (Steele, Lea & Flood 2014), one 64-bit state per device ----------------------
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@jit
def _uniform(device, i):
    """Next uniform double in [0, 1) of device i's stream."""
    z = device[i]["rng"] + _GAMMA
    device[i]["rng"] = z
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit
def _below(device, i, n):
    """Uniform integer in [0, n) from device i's stream."""
    return min(np.int64(_uniform(device, i) * n), n - 1)


# ---- traces --------------------------------------------------------------------------------------------------
@jit
def _count(values, first, n, x, right):
    """How many of values[first:first + n] (ascending) are < x, or <= x when ``right``."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        v = values[first + mid]
        if v < x or (right and v == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def _segment(tables, trace, phase):
    """Segment of ``trace`` holding ``phase`` (seconds into its period), relative to its first segment."""
    n = tables.trace_segments[trace]
    return min(max(_count(tables.trace_times, tables.trace_first[trace], n, phase, True) - 1, 0), n - 1)


@jit
def _mbps_at(tables, trace, t):
    dur = tables.trace_duration[trace]
    return tables.trace_mbps[tables.trace_first[trace] + _segment(tables, trace, t - math.floor(t / dur) * dur)]


@jit
def _transfer_s(tables, trace, start, nbytes):
    """Seconds to upload ``nbytes`` from ``start`` on ``trace``: ``bandwidth_traces.Trace.transfer_time``."""
    if nbytes <= 0.0:
        return 0.0
    times, mbps, cum = tables.trace_times, tables.trace_mbps, tables.trace_cum_bits
    first, n = tables.trace_first[trace], tables.trace_segments[trace]
    cum_first = first + trace  # each trace has n + 1 cumulative entries
    dur, period = tables.trace_duration[trace], tables.trace_period_bits[trace]
    phase = start - math.floor(start / dur) * dur
    i = _segment(tables, trace, phase)
    target = cum[cum_first + i] + mbps[first + i] * 1e6 * (phase - times[first + i]) + nbytes * 8.0
    wraps = max(math.ceil(target / period) - 1.0, 0.0)  # whole periods before the one the upload ends in
    rem = target - wraps * period
    j = min(max(_count(cum, cum_first, n + 1, rem, False) - 1, 0), n - 1)
    rate = mbps[first + j] * 1e6
    t_end = times[first + j] + (rem - cum[cum_first + j]) / (rate if rate > 0 else 1.0)
    return max(wraps * dur + t_end - phase, 0.0)


# ---- episodes ------------------------------------------------------------------------------------------------
@jit
def _begin_episode(state, i):
    """Device i starts its (drawn or pinned) episode: everything but trace, start and pieces back to the start."""
    d = state.device[i]
    d["status"] = RUNNING
    d["step"] = 0
    d["piece"] = 0
    d["offset"] = 0
    d["link_free_s"] = d["start_s"]
    d["issued"] = 0
    d["offload_ema"] = 0.0
    d["last_action"] = 0
    state.upload_finish[i, :] = -np.inf
    state.upload_mbps[i, :] = 0.0


@jit
def _draw_episode(state, tables, i):
    """Device i draws a trace, a start offset and scene pieces from its own stream, then begins.

    Pieces: a scene uniformly, a length uniform in [ceil(L / 2), L], a start uniform in [0, L - length], until the
    episode's frames (plus the final observation's) are covered, so no fixed period can be learnt.
    """
    device, pieces = state.device, state.pieces
    scene_len = tables.scene_len
    n_traces = tables.trace_duration.shape[0]
    trace = _below(device, i, n_traces)
    device[i]["trace"] = trace
    device[i]["start_s"] = _uniform(device, i) * tables.trace_duration[trace]
    need = tables.params[0]["episode_frames"] + 1
    k = 0
    while need > 0:
        scene = _below(device, i, scene_len.shape[0])
        full = scene_len[scene]
        shortest = (full + 1) // 2
        length = shortest + _below(device, i, full - shortest + 1)
        pieces[i, k, 0] = scene
        pieces[i, k, 1] = _below(device, i, full - length + 1)
        pieces[i, k, 2] = length
        need -= length
        k += 1
    device[i]["n_pieces"] = k
    _begin_episode(state, i)


@jit
def _draw_episodes(state, tables, rows):
    """New episodes for the given devices, each from its own stream."""
    for i in rows:
        _draw_episode(state, tables, i)


@jit
def _begin_episodes(state, rows):
    """(Re)start the given devices' episodes as pinned (trace, start and pieces already written)."""
    for i in rows:
        _begin_episode(state, i)


@jit
def _frame(state, tables, i):
    piece = state.device[i]["piece"]
    return tables.scene_start[state.pieces[i, piece, 0]] + state.pieces[i, piece, 1] + state.device[i]["offset"]


@jit
def _pending(state, i, td):
    n = 0
    for s in range(state.upload_finish.shape[1]):
        if state.upload_finish[i, s] > td:
            n += 1
    return n


# ---- what the device knows, and the observation ----------------------------------------------------------------
@jit
def _signals_row(state, tables, buffers, i):
    """Buffers' frame, measurement history and SIGNALS of device i at its current decision time."""
    d = state.device[i]
    prm = tables.params[0]
    finish, mbps = state.upload_finish, state.upload_mbps
    ring = finish.shape[1]
    buffers.frame[i] = _frame(state, tables, i)
    td = d["start_s"] + d["step"] * prm["frame_s"] + prm["student_s"]
    pending = _pending(state, i, td)
    newest = d["issued"] - pending - 1  # the newest completed upload (FIFO: completions in order)
    meas = buffers.meas_mbps
    n_meas = 0
    for j in range(meas.shape[1]):
        if newest - j >= 0:
            meas[i, j] = mbps[i, (newest - j) % ring]
            n_meas += 1
        else:
            meas[i, j] = 0.0
    sig = buffers.signals[i]
    sig["n_meas"] = n_meas
    sig["backlog_s"] = max(d["link_free_s"] - td, 0.0)
    sig["pending"] = pending
    sig["since_meas_s"] = td - (finish[i, newest % ring] if newest >= 0 else d["start_s"])
    sig["offload_rate"] = d["offload_ema"]
    sig["last_action"] = d["last_action"]
    sig["true_mbps"] = _mbps_at(tables, d["trace"], td) if prm["oracle_bandwidth"] else 0.0


@jit
def _observe_rows(state, tables, buffers, lo, hi):
    for i in range(lo, hi):
        _signals_row(state, tables, buffers, i)
    _observation_into(buffers.obs[lo:hi], buffers.frame[lo:hi], tables.conf, tables.remote_kb, buffers.meas_mbps[lo:hi],
                      buffers.signals[lo:hi], tables.remote_times, tables.obs_consts)


@jit
def _observe(state, tables, buffers):
    """All devices' observations into buffers.obs (and their signals into the scratch)."""
    _observe_rows(state, tables, buffers, 0, state.device.shape[0])


# ---- one frame -------------------------------------------------------------------------------------------------
@jit
def _answer_s(tables, d, f, t, td, remote):
    """(upload start, upload seconds, answer time) of sending remote action ``remote`` of frame f now."""
    nbytes = tables.remote_bytes[f, remote]
    start = max(td, d["link_free_s"])
    upload = _transfer_s(tables, d["trace"], start, nbytes)
    return start, upload, start + upload + tables.remote_times[0, remote] + tables.remote_times[1, remote]


@jit
def _preview(state, tables, on_time, can_send):
    """Hindsight for the oracle, changing nothing: would each remote action be on time; is the buffer open."""
    prm = tables.params[0]
    for i in range(state.device.shape[0]):
        d = state.device[i]
        f = _frame(state, tables, i)
        t = d["start_s"] + d["step"] * prm["frame_s"]
        td = t + prm["student_s"]
        can_send[i] = _pending(state, i, td) < prm["max_queue"]
        for r in range(on_time.shape[1]):
            on_time[i, r] = can_send[i] and _answer_s(tables, d, f, t, td, r)[2] <= t + prm["deadline_s"] + 1e-12


@jit
def _check(state, actions, n_actions, mode):
    """The first problem with this step's input, before anything changes: a return code and the device."""
    for i in range(actions.shape[0]):
        status = state.device[i]["status"]
        if status == NOT_STARTED:
            return NOT_RESET, i
        if status == OVER and mode != NEXT_STEP:
            return EPISODE_OVER, i
        if status == RUNNING and not 0 <= actions[i] < n_actions:
            return BAD_ACTION, i
    return OK, -1


@jit
def _step(state, tables, buffers, actions, n_actions, mode):
    """Apply one action per device, then observe; returns (code, device) with code OK or the first problem.

    ``mode``: NO_AUTORESET (an ended episode must be reset by the caller), NEXT_STEP (Gymnasium's default: the
    step after the end starts a new episode, action ignored, reward 0, ``stepped`` False) or SAME_STEP (SB3: the
    ended episode's observation goes to ``final_obs`` and the new episode's to ``obs``).
    """
    code, where = _check(state, actions, n_actions, mode)
    if code != OK:
        return code, where
    prm = tables.params[0]
    remote_correct, student_correct = tables.remote_correct, tables.student_correct
    ring = state.upload_finish.shape[1]
    obs, reward, truncated, stepped, info = buffers.obs, buffers.reward, buffers.truncated, buffers.stepped, buffers.info
    b = actions.shape[0]
    for i in range(b):
        d = state.device[i]
        buffers.terminated[i] = False  # the stream never ends by itself
        if d["status"] == OVER:  # NEXT_STEP autoreset
            _draw_episode(state, tables, i)
            reward[i] = 0.0
            truncated[i] = False
            stepped[i] = False
            continue
        stepped[i] = True
        a = actions[i]
        f = _frame(state, tables, i)
        t = d["start_s"] + d["step"] * prm["frame_s"]
        td = t + prm["student_s"]
        refused = a > 0 and _pending(state, i, td) >= prm["max_queue"]
        send = a > 0 and not refused
        nbytes = 0.0
        on_time = False
        correct = student_correct[f]
        latency_ms = prm["student_s"] * 1000.0
        if send:
            r = a - 1
            nbytes = tables.remote_bytes[f, r]
            start, upload, answer = _answer_s(tables, d, f, t, td, r)
            on_time = answer <= t + prm["deadline_s"] + 1e-12
            if on_time:
                correct = remote_correct[f, r]
                latency_ms = (answer - t) * 1000.0
            else:
                latency_ms = prm["deadline_ms"]
            slot = d["issued"] % ring
            state.upload_finish[i, slot] = start + upload
            state.upload_mbps[i, slot] = nbytes * 8e-6 / max(upload, 1e-9)
            d["issued"] += 1
            d["link_free_s"] = start + upload
        d["offload_ema"] += prm["rate_ema"] * ((1.0 if send else 0.0) - d["offload_ema"])
        d["last_action"] = a
        d["step"] += 1
        d["offset"] += 1
        if d["offset"] >= state.pieces[i, d["piece"], 2]:
            d["offset"] = 0
            d["piece"] = (d["piece"] + 1) % d["n_pieces"]
        reward[i] = (1.0 if correct else 0.0) - prm["byte_cost"] * nbytes / 1e6
        if prm["local_baseline"] and student_correct[f]:
            reward[i] -= 1.0
        rec = info[i]
        rec["correct"] = correct
        rec["used_remote"] = on_time
        rec["late"] = send and not on_time
        rec["refused"] = refused
        rec["latency_ms"] = latency_ms
        rec["bytes"] = nbytes
        rec["true_mbps"] = _mbps_at(tables, d["trace"], td)
        rec["action"] = a
        rec["trace"] = d["trace"]
        rec["frame"] = f
        truncated[i] = d["step"] >= prm["episode_frames"]
        if truncated[i]:
            d["status"] = OVER
    _observe(state, tables, buffers)
    if mode == SAME_STEP:
        for i in range(b):
            if truncated[i]:
                buffers.final_obs[i, :] = obs[i, :]
                _draw_episode(state, tables, i)
                _observe_rows(state, tables, buffers, i, i + 1)
    return OK, -1


# ---- entry points: plain tuples in (Numba dispatches a tuple of arrays ~3x faster than a NamedTuple) --------------
@jit
def draw_episodes(state, tables, rows):
    """New episodes for the given devices, each from its own stream."""
    _draw_episodes(EnvState(*state), Tables(*tables), rows)


@jit
def begin_episodes(state, rows):
    """(Re)start the given devices' episodes as pinned (trace, start and pieces already written)."""
    _begin_episodes(EnvState(*state), rows)


@jit
def observe(state, tables, buffers):
    """All devices' observations into buffers.obs (and their signals into the scratch)."""
    _observe(EnvState(*state), Tables(*tables), Buffers(*buffers))


@jit
def preview(state, tables, on_time, can_send):
    """Hindsight for the oracle, changing nothing: would each remote action be on time; is the buffer open."""
    _preview(EnvState(*state), Tables(*tables), on_time, can_send)


@jit
def step(state, tables, buffers, actions, n_actions, mode):
    """One frame for every device (see ``_step``); returns (code, device)."""
    return _step(EnvState(*state), Tables(*tables), Buffers(*buffers), actions, n_actions, mode)
