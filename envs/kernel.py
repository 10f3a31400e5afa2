"""The compiled dynamics: one Numba kernel steps B devices (B = 1 for ``OffloadEnv``), observation included.

Why Numba (``njit(cache=True)``): the dynamics are scalar branches per device (queue, one trace lookup, a deadline
test) that NumPy could only express as ~150 whole-array calls per step; the same loop compiled costs a few hundred
nanoseconds per device, for batch 1 and batch N alike, with no second implementation. ``cache=True`` writes the
machine code next to the sources, so only the first use on a machine pays the compile. The observation is
``offload_common.observation.observation_into`` compiled here as is; the device runtime runs that same source uncompiled.

Layout, all defined in this module:
  * ``STATE``: one record per device (episode, uplink, behaviour, its own random stream). A new per-device field
    is one line in ``STATE`` plus its value at episode start in ``_begin_episode`` (the one reset of the state).
  * ``EnvState``: the ``STATE`` records plus the arrays whose size depends on the config (upload ring, pieces).
  * ``Tables``: everything fixed for the env's lifetime (``PARAMS``, one per-frame table, scenes, packed traces),
    built once by ``envs.core``. A new per-frame quantity is one entry of ``envs.frame_table.FRAME_COLUMNS``
    (its columns in ``frames``, its first column in ``PARAMS`` as ``col_<name>``, its values from the profile).
  * ``Buffers``: what a step writes (observations, ``STEP`` records) plus the signal scratch.
The entry points take these as plain tuples (Numba dispatches a tuple of arrays ~3x faster than a NamedTuple,
which matters at batch 1) and read their fields by name: ``tables[T_FRAMES]``, ``buffers[B_OUT]``, positions
derived from the NamedTuples' fields (``EnvState``'s three are unpacked as ``device, uploads, pieces``). A function
called per device that takes whole tuples is ``@inlined`` (Numba IR inlining), so no call passes them.

``step`` reads as the physics of one frame per device: the decision time, refusal or ``_send`` (the FIFO uplink
and the upload ring), ``_score`` (which answer is used, the reward), ``_advance`` (the next frame, truncation),
``_record``; autoreset is apart (``_restart``, ``_restart_same_step``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from offload_common import observation as features
from offload_common.observation import PMAX_EMA_RATE, SIGNALS, observation_into

from . import _numba_cache
from .frame_table import FRAME_COLUMNS

# the compiled kernel includes the compiled observation, so its on-disk cache is stamped with both sources
_SOURCES = (Path(__file__).resolve(), Path(features.__file__).resolve())
_numba_cache.use_writable_cache_dir(_SOURCES[0].parent)
_CACHED = _numba_cache.stamp_with_sources(_SOURCES)  # False (after a warning) on a Numba it was not checked on

# status of a device's episode
NOT_STARTED, RUNNING, OVER = 0, 1, 2
# autoreset modes of ``step``
NO_AUTORESET, NEXT_STEP, SAME_STEP = 0, 1, 2
# ``step``'s return codes
OK, BAD_ACTION, NOT_RESET, EPISODE_OVER = 0, 1, 2, 3

STATE = np.dtype([
    ("status", np.int64),         # NOT_STARTED, RUNNING or OVER
    ("rng", np.uint64),           # SplitMix64 state: this device's own stream of episodes
    ("trace", np.int64),          # index of the episode's trace in the env's traces
    ("start_s", np.float64),      # episode start offset into the trace
    ("step", np.int64),           # frames decided so far in this episode
    ("n_pieces", np.int64),       # scene pieces of the episode (in EnvState.pieces)
    ("piece", np.int64),          # current piece
    ("offset", np.int64),         # frame within the current piece
    ("link_free_s", np.float64),  # when the uplink finishes its last accepted upload
    ("issued", np.int64),         # uploads sent this episode (the ring slot of the next is issued % ring)
    ("offload_ema", np.float64),  # EMA of "this frame was offloaded"
    ("last_action", np.int64),    # previous action (0 at episode start)
    ("segment", np.int64),        # trace segment of the last lookup: where the next search starts (a hint only)
    ("prev_frame", np.int64),     # profile frame of the previous decision (-1 at the episode's start)
    ("cache_frame", np.int64),    # profile frame whose remote answer the device holds (-1: cache empty)
    ("cache_remote", np.int64),   # remote action index (0..R) that produced it
    ("cache_capture_s", np.float64),  # capture time of the cached answer's frame
    ("top1_run", np.int64),       # frames right before prev_frame with its student top-1, in a row
    ("pmax_ema", np.float64),     # EMA of the decided frames' top-1 probability (0 before the first)
])

# columns of EnvState.uploads: one row per upload in the ring
UP_FINISH, UP_MBPS, UP_ANSWER, UP_FRAME, UP_REMOTE, UP_CAPTURE = range(6)

PARAMS = np.dtype([
    ("frame_s", np.float64), ("deadline_s", np.float64), ("deadline_ms", np.float64), ("student_s", np.float64),
    ("byte_cost", np.float64), ("rate_ema", np.float64), ("max_queue", np.int64), ("episode_frames", np.int64),
    ("n_conf", np.int64),   # k + 2 confidence columns (the ``conf`` group of Tables.frames)
    ("top_k", np.int64),    # k
    # first column of each group of Tables.frames: col_conf, col_remote_kb, col_bytes, ... (envs.frame_table)
    *[(f"col_{group.name}", np.int64) for group in FRAME_COLUMNS],
    ("n_actions", np.int64),  # A = R + 3: local, R + 1 remote actions, reuse
    ("local_baseline", np.bool_), ("oracle_bandwidth", np.bool_),
])

INFO = np.dtype([
    ("correct", np.bool_), ("used_remote", np.bool_), ("late", np.bool_), ("refused", np.bool_),
    ("latency_ms", np.float64), ("bytes", np.float64), ("true_mbps", np.float64), ("action", np.int64),
    ("trace", np.int64), ("frame", np.int64),
    ("reused", np.bool_),  # the answer used was a cached remote answer (the reuse action with a non-empty cache)
])
# what one step returns per device: reward and flags, then the info fields
STEP = np.dtype([("reward", np.float64), ("terminated", np.bool_), ("truncated", np.bool_),
                 ("stepped", np.bool_),  # False where NEXT_STEP autoreset started a new episode instead
                 *[(name, INFO.fields[name][0]) for name in INFO.names]])


class EnvState(NamedTuple):
    """Mutable state of B devices."""

    device: NDArray   # [B] STATE records
    uploads: NDArray  # [B, P, 6] of the P most recent uploads (ring): upload finish time (-inf: none), measured
    #                   Mbit/s, answer arrival time, answered profile frame, remote action index, capture time
    pieces: NDArray   # [B, max_pieces, 3] (scene, first frame in the scene, length) of each piece

    @classmethod
    def zeros(cls, num_envs: int, ring: int, max_pieces: int) -> EnvState:
        uploads = np.zeros((num_envs, ring, 6))
        uploads[:, :, UP_FINISH] = -np.inf
        uploads[:, :, UP_ANSWER] = np.inf
        return cls(np.zeros(num_envs, STATE), uploads, np.zeros((num_envs, max_pieces, 3), np.int64))


class Tables(NamedTuple):
    """Constants of one env."""

    params: NDArray        # [1] PARAMS record
    frames: NDArray        # [N, C] per profile frame, column groups in ``envs.frame_table.FRAME_COLUMNS``
    embedding: NDArray     # [N, D] the frame's embedding, unit length (cosine = dot product)
    remote_times: NDArray  # [2, R + 1] round trip (row 0) and compute (row 1) seconds per remote action
    obs_consts: NDArray    # [4] offload_common.observation.observation_constants
    scenes: NDArray        # [S, 2] first profile frame and length of each scene
    trace_segments: NDArray  # [M, 2] start (s) and Mbit/s of every segment of every trace, trace after trace
    trace_cum_bits: NDArray  # [M + T] bits deliverable up to each segment start, plus each period's total
    trace_index: NDArray   # [T, 2] first segment and number of segments of each trace
    trace_period: NDArray  # [T, 2] period (s) and bits per period of each trace


# positions of the fields in the plain tuple the entry points take: ``tables[T_FRAMES]`` is ``Tables.frames``
(T_PARAMS, T_FRAMES, T_EMBEDDING, T_REMOTE_TIMES, T_OBS_CONSTS, T_SCENES, T_SEGMENTS, T_CUM_BITS, T_TRACE_INDEX,
 T_TRACE_PERIOD) = (
    Tables._fields.index(name) for name in ("params", "frames", "embedding", "remote_times", "obs_consts", "scenes",
                                            "trace_segments", "trace_cum_bits", "trace_index", "trace_period"))


class Buffers(NamedTuple):
    """Outputs of ``step`` / ``observe`` and their scratch, allocated once per env."""

    obs: NDArray        # [B, D] float32
    final_obs: NDArray  # [B, D] float32: SAME_STEP autoreset's observation of the ended episode
    out: NDArray        # [B] STEP records
    frame: NDArray      # [B] current profile frame
    meas_mbps: NDArray  # [B, H] measurement history, newest first
    signals: NDArray    # [B] SIGNALS records

    @classmethod
    def zeros(cls, num_envs: int, dim: int, history: int) -> Buffers:
        b = num_envs
        return cls(np.zeros((b, dim), np.float32), np.zeros((b, dim), np.float32), np.zeros(b, STEP),
                   np.zeros(b, np.int64), np.zeros((b, history)), np.zeros(b, SIGNALS))


# likewise for Buffers: ``buffers[B_OUT]`` is ``Buffers.out``
B_OBS, B_FINAL_OBS, B_OUT, B_FRAME, B_MEAS_MBPS, B_SIGNALS = (
    Buffers._fields.index(name) for name in ("obs", "final_obs", "out", "frame", "meas_mbps", "signals"))


jit = numba.njit(cache=_CACHED)
# functions called per device that take whole state/tables tuples are inlined in Numba's IR: as calls, passing the
# tuples cost ~20% of ``step`` at 1,024 devices (measured); functions of a few arrays are inlined by LLVM anyway
inlined = numba.njit(cache=_CACHED, inline="always")
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
def _segment(segments, first, n, phase, hint):
    """Segment (relative to ``first``) of the trace whose n segments start at ``first`` that holds ``phase``.

    Time moves forward by a frame at a time and segments last about a second, so the answer is almost always
    ``hint`` or the one after it: those are checked first, else a binary search (the answer is the same).
    """
    for j in (hint, hint + 1):
        if 0 <= j < n and segments[first + j, 0] <= phase and (j + 1 == n or phase < segments[first + j + 1, 0]):
            return j
    return min(max(_count(segments[:, 0], first, n, phase, True) - 1, 0), n - 1)


@jit
def _mbps_at(segments, trace_index, trace_period, trace, t, hint):
    """``Trace.mbps_at``: throughput of ``trace`` at time t (wrapping around its period), and its segment."""
    first, n = trace_index[trace, 0], trace_index[trace, 1]
    dur = trace_period[trace, 0]
    j = _segment(segments, first, n, t - math.floor(t / dur) * dur, hint)
    return segments[first + j, 1], j


@jit
def _transfer_s(segments, cum_bits, trace_index, trace_period, trace, start, nbytes, hint):
    """``Trace.transfer_time``: seconds to upload ``nbytes`` from ``start`` on ``trace`` (through outages)."""
    if nbytes <= 0.0:
        return 0.0
    first, n = trace_index[trace, 0], trace_index[trace, 1]
    cum_first = first + trace  # each trace has n + 1 cumulative entries
    dur, period = trace_period[trace, 0], trace_period[trace, 1]
    phase = start - math.floor(start / dur) * dur
    i = _segment(segments, first, n, phase, hint)
    target = cum_bits[cum_first + i] + segments[first + i, 1] * 1e6 * (phase - segments[first + i, 0]) + nbytes * 8.0
    wraps = max(math.ceil(target / period) - 1.0, 0.0)  # whole periods before the one the upload ends in
    rem = target - wraps * period
    j = -1  # the segment the upload ends in: the last with cumulative bits < rem; most uploads end in i or i + 1
    for k in (i, i + 1):
        if j < 0 and k < n and cum_bits[cum_first + k] < rem <= cum_bits[cum_first + k + 1]:
            j = k
    if j < 0:
        j = min(max(_count(cum_bits, cum_first, n + 1, rem, False) - 1, 0), n - 1)
    rate = segments[first + j, 1] * 1e6
    t_end = segments[first + j, 0] + (rem - cum_bits[cum_first + j]) / (rate if rate > 0 else 1.0)
    return max(wraps * dur + t_end - phase, 0.0)


# ---- episodes ------------------------------------------------------------------------------------------------
@jit
def _begin_episode(device, uploads, i):
    """Device i starts its (drawn or pinned) episode: everything but trace, start and pieces back to the start."""
    d = device[i]
    d["status"] = RUNNING
    d["step"] = 0
    d["piece"] = 0
    d["offset"] = 0
    d["link_free_s"] = d["start_s"]
    d["issued"] = 0
    d["offload_ema"] = 0.0
    d["last_action"] = 0
    d["segment"] = 0
    d["prev_frame"] = -1
    d["top1_run"] = 0
    d["pmax_ema"] = 0.0
    d["cache_frame"] = -1
    d["cache_remote"] = -1
    d["cache_capture_s"] = -np.inf
    uploads[i, :, :] = 0.0
    uploads[i, :, UP_FINISH] = -np.inf
    uploads[i, :, UP_ANSWER] = np.inf


@inlined
def _draw_episode(state, tables, i):
    """Device i draws a trace, a start offset and scene pieces from its own stream, then begins.

    Pieces: a scene uniformly, a length uniform in [ceil(L / 2), L], a first frame uniform in [0, L - length],
    until the episode's frames (plus the final observation's) are covered, so no fixed period can be learnt.
    """
    device, uploads, pieces = state
    scenes, trace_period = tables[T_SCENES], tables[T_TRACE_PERIOD]
    trace = _below(device, i, trace_period.shape[0])
    device[i]["trace"] = trace
    device[i]["start_s"] = _uniform(device, i) * trace_period[trace, 0]
    need = tables[T_PARAMS][0]["episode_frames"] + 1
    k = 0
    while need > 0:
        scene = _below(device, i, scenes.shape[0])
        full = scenes[scene, 1]
        shortest = (full + 1) // 2
        length = shortest + _below(device, i, full - shortest + 1)
        pieces[i, k, 0] = scene
        pieces[i, k, 1] = _below(device, i, full - length + 1)
        pieces[i, k, 2] = length
        need -= length
        k += 1
    device[i]["n_pieces"] = k
    _begin_episode(device, uploads, i)


@jit
def _frame(device, pieces, scenes, i):
    """Profile frame device i is looking at."""
    piece = device[i]["piece"]
    return scenes[pieces[i, piece, 0], 0] + pieces[i, piece, 1] + device[i]["offset"]


@jit
def _times(dev, prm):
    """Capture time of the device's current frame, and its decision time (after the student ran)."""
    capture_s = dev["start_s"] + dev["step"] * prm["frame_s"]
    return capture_s, capture_s + prm["student_s"]


@jit
def _pending(uploads, i, decide_s):
    """Uploads of device i still in flight at decide_s."""
    n = 0
    for s in range(uploads.shape[1]):
        if uploads[i, s, UP_FINISH] > decide_s:
            n += 1
    return n


@jit
def _fold_answers(device, uploads, i, decide_s):
    """Device i's answer cache takes every remote answer back by ``decide_s`` (late ones too): it holds the one
    about the most recently captured frame. Idempotent, so observe and step may both call it at one time."""
    d = device[i]
    for s in range(uploads.shape[1]):
        if uploads[i, s, UP_ANSWER] <= decide_s and uploads[i, s, UP_CAPTURE] > d["cache_capture_s"]:
            d["cache_frame"] = np.int64(uploads[i, s, UP_FRAME])
            d["cache_remote"] = np.int64(uploads[i, s, UP_REMOTE])
            d["cache_capture_s"] = uploads[i, s, UP_CAPTURE]


@jit
def _cached_class(device, frames, prm, i):
    """The class of device i's cached answer (-1 when the cache is empty)."""
    d = device[i]
    if d["cache_frame"] < 0:
        return -1
    return np.int64(frames[d["cache_frame"], prm["col_remote_pred"] + d["cache_remote"]])


@jit
def _dot(embedding, a, b):
    out = 0.0
    for j in range(embedding.shape[1]):
        out += embedding[a, j] * embedding[b, j]
    return out


# ---- one frame of one device: the physics ------------------------------------------------------------------------
@inlined
def _answer_time(tables, dev, frame, r, decide_s):
    """Remote action r for ``frame`` sent at ``decide_s``: the upload waits for the FIFO uplink, takes the trace's
    transfer time for the frame's JPEG, then the round trip and the model's compute. Returns (upload start,
    upload seconds, answer arrival time)."""
    remote_times = tables[T_REMOTE_TIMES]
    start_s = max(decide_s, dev["link_free_s"])
    upload_s = _transfer_s(tables[T_SEGMENTS], tables[T_CUM_BITS], tables[T_TRACE_INDEX], tables[T_TRACE_PERIOD],
                           dev["trace"], start_s, tables[T_FRAMES][frame, tables[T_PARAMS][0]["col_bytes"] + r],
                           dev["segment"])
    return start_s, upload_s, start_s + upload_s + remote_times[0, r] + remote_times[1, r]


@inlined
def _send(state, tables, i, frame, r, capture_s, decide_s):
    """Device i uploads ``frame`` for remote action r: the upload enters the ring (its measured throughput, its
    answer's arrival) and holds the link until it is through. Returns (bytes sent, answer arrival time)."""
    device, uploads, _ = state
    dev = device[i]
    nbytes = tables[T_FRAMES][frame, tables[T_PARAMS][0]["col_bytes"] + r]
    start_s, upload_s, answer_s = _answer_time(tables, dev, frame, r, decide_s)
    slot = dev["issued"] % uploads.shape[1]
    uploads[i, slot, UP_FINISH] = start_s + upload_s
    uploads[i, slot, UP_MBPS] = nbytes * 8e-6 / max(upload_s, 1e-9)
    uploads[i, slot, UP_ANSWER] = answer_s
    uploads[i, slot, UP_FRAME] = frame
    uploads[i, slot, UP_REMOTE] = r
    uploads[i, slot, UP_CAPTURE] = capture_s
    dev["issued"] += 1
    dev["link_free_s"] = start_s + upload_s
    return nbytes, answer_s


@jit
def _score(device, frames, prm, i, frame, action, on_time, nbytes):
    """The answer used for ``frame`` and the reward: the remote answer if back on time, else for reuse the cached
    answer (when one is held), else the student's. Returns (correct, reused the cache, reward)."""
    correct_col = prm["col_correct"]
    reused = False
    if on_time:
        correct = frames[frame, correct_col + action] > 0
    elif action == prm["n_actions"] - 1 and device[i]["cache_frame"] >= 0:
        reused = True
        correct = _cached_class(device, frames, prm, i) == np.int64(frames[frame, prm["col_label"]])
    else:
        correct = frames[frame, correct_col] > 0
    reward = (1.0 if correct else 0.0) - prm["byte_cost"] * nbytes / 1e6
    if prm["local_baseline"]:
        reward -= frames[frame, correct_col]
    return correct, reused, reward


@jit
def _top1_run(dev, frames, prm, f):
    """Frames right before frame ``f`` in this episode with the same student top-1 as it, in a row."""
    prev = dev["prev_frame"]
    if prev >= 0 and frames[f, prm["col_topk_class"]] == frames[prev, prm["col_topk_class"]]:
        return dev["top1_run"] + 1
    return 0


@jit
def _advance(device, pieces, frames, prm, i, action, frame, sent):
    """Device i moves on to its next frame (behaviour memory, the student's recent history, frame counter, scene
    piece); True when the episode is over (truncated: the stream itself never ends)."""
    dev = device[i]
    dev["offload_ema"] += prm["rate_ema"] * ((1.0 if sent else 0.0) - dev["offload_ema"])
    dev["last_action"] = action
    top1_prob = frames[frame, prm["col_conf"]]  # the first confidence column: the top-1 probability
    dev["pmax_ema"] = (top1_prob if dev["prev_frame"] < 0
                       else dev["pmax_ema"] + PMAX_EMA_RATE * (top1_prob - dev["pmax_ema"]))
    dev["top1_run"] = _top1_run(dev, frames, prm, frame)
    dev["prev_frame"] = frame
    dev["step"] += 1
    dev["offset"] += 1
    if dev["offset"] >= pieces[i, dev["piece"], 2]:
        dev["offset"] = 0
        dev["piece"] = (dev["piece"] + 1) % dev["n_pieces"]
    truncated = dev["step"] >= prm["episode_frames"]
    if truncated:
        dev["status"] = OVER
    return truncated


@jit
def _record(out, i, reward, truncated, correct, on_time, sent, refused, latency_ms, nbytes, true_mbps, action,
            trace, frame, reused):
    """Device i's STEP record of a decided frame."""
    rec = out[i]
    rec["reward"] = reward
    rec["terminated"] = False  # the stream never ends by itself
    rec["truncated"] = truncated
    rec["stepped"] = True
    rec["correct"] = correct
    rec["used_remote"] = on_time
    rec["late"] = sent and not on_time
    rec["refused"] = refused
    rec["latency_ms"] = latency_ms
    rec["bytes"] = nbytes
    rec["true_mbps"] = true_mbps
    rec["action"] = action
    rec["trace"] = trace
    rec["frame"] = frame
    rec["reused"] = reused


# ---- autoreset ------------------------------------------------------------------------------------------------------
@inlined
def _restart(state, tables, out, i):
    """NEXT_STEP autoreset: device i's step after its episode's end starts the next episode (nothing decided)."""
    _draw_episode(state, tables, i)
    rec = out[i]
    rec["reward"] = 0.0
    rec["terminated"] = False
    rec["truncated"] = False
    rec["stepped"] = False


@jit
def _restart_same_step(state, tables, buffers):
    """SAME_STEP autoreset: each device whose episode just ended keeps that observation in ``final_obs`` and
    starts its next episode, whose first observation replaces it in ``obs``."""
    obs, final_obs, out = buffers[B_OBS], buffers[B_FINAL_OBS], buffers[B_OUT]
    for i in range(out.shape[0]):
        if out[i]["truncated"]:
            final_obs[i, :] = obs[i, :]
            _draw_episode(state, tables, i)
            observe(state, tables, buffers, i, i + 1)


# ---- entry points ----------------------------------------------------------------------------------------------
@jit
def draw_episodes(state, tables, rows):
    """New episodes for the given devices, each from its own stream."""
    for i in rows:
        _draw_episode(state, tables, i)


@jit
def begin_episodes(state, rows):
    """(Re)start the given devices' episodes as pinned (trace, start and pieces already written)."""
    device, uploads, _ = state
    for i in rows:
        _begin_episode(device, uploads, i)


@jit
def observe(state, tables, buffers, lo, hi):
    """Observations of devices lo..hi-1 into buffers.obs, their raw signals into buffers' scratch."""
    device, uploads, pieces = state
    prm = tables[T_PARAMS][0]
    frames, embedding = tables[T_FRAMES], tables[T_EMBEDDING]
    frame, meas, signals = buffers[B_FRAME], buffers[B_MEAS_MBPS], buffers[B_SIGNALS]
    ring = uploads.shape[1]
    for i in range(lo, hi):
        dev = device[i]
        frame[i] = _frame(device, pieces, tables[T_SCENES], i)
        decide_s = _times(dev, prm)[1]
        _fold_answers(device, uploads, i, decide_s)
        pending = _pending(uploads, i, decide_s)
        newest = dev["issued"] - pending - 1  # the newest completed upload (FIFO: completions in order)
        n_meas = 0
        for j in range(meas.shape[1]):
            if newest - j >= 0:
                meas[i, j] = uploads[i, (newest - j) % ring, UP_MBPS]
                n_meas += 1
            else:
                meas[i, j] = 0.0
        sig = signals[i]
        sig["n_meas"] = n_meas
        sig["backlog_s"] = max(dev["link_free_s"] - decide_s, 0.0)
        sig["pending"] = pending
        sig["since_meas_s"] = decide_s - (uploads[i, newest % ring, UP_FINISH] if newest >= 0 else dev["start_s"])
        sig["offload_rate"] = dev["offload_ema"]
        sig["last_action"] = dev["last_action"]
        sig["true_mbps"] = (_mbps_at(tables[T_SEGMENTS], tables[T_TRACE_INDEX], tables[T_TRACE_PERIOD], dev["trace"],
                                     decide_s, dev["segment"])[0] if prm["oracle_bandwidth"] else 0.0)
        f = frame[i]
        sig["cos_prev"] = _dot(embedding, f, dev["prev_frame"]) if dev["prev_frame"] >= 0 else 0.0
        cached = _cached_class(device, frames, prm, i)
        sig["cache_held"] = 1 if cached >= 0 else 0
        sig["cache_src"] = dev["cache_remote"]
        sig["cache_age_s"] = decide_s - dev["cache_capture_s"] if cached >= 0 else 0.0
        sig["cache_conf"] = (frames[dev["cache_frame"], prm["col_remote_conf"] + dev["cache_remote"]]
                             if cached >= 0 else 0.0)
        sig["cache_agrees"] = 1 if cached >= 0 and frames[f, prm["col_topk_class"]] == cached else 0
        p_cached = 0.0
        if cached >= 0:
            for j in range(prm["top_k"]):
                if frames[f, prm["col_topk_class"] + j] == cached:
                    p_cached = frames[f, prm["col_conf"] + j]  # the first k confidence columns: top-k probabilities
        sig["student_p_cached"] = p_cached
        sig["cos_cache"] = _dot(embedding, f, dev["cache_frame"]) if cached >= 0 else 0.0
        sig["top1_run"] = _top1_run(dev, frames, prm, f)
        sig["pmax_ema"] = dev["pmax_ema"] if dev["prev_frame"] >= 0 else 0.0
    n_remote = prm["n_actions"] - 2
    conf, kb, dist = prm["col_conf"], prm["col_remote_kb"], prm["col_dist"]
    _observation_into(buffers[B_OBS][lo:hi], frame[lo:hi], frames[:, conf:conf + prm["n_conf"]],
                      frames[:, kb:kb + n_remote], frames[:, dist:dist + n_remote + 1], meas[lo:hi], signals[lo:hi],
                      tables[T_REMOTE_TIMES], tables[T_OBS_CONSTS])


@jit
def preview(state, tables, on_time, can_send, reuse_right, pending, answer_delay):
    """Hindsight for the oracle, changing nothing: would each remote action be on time; is the buffer open;
    would reusing the cached answer be right; uploads in flight; seconds from capture to each remote answer."""
    device, uploads, pieces = state
    prm = tables[T_PARAMS][0]
    frames = tables[T_FRAMES]
    for i in range(device.shape[0]):
        dev = device[i]
        frame = _frame(device, pieces, tables[T_SCENES], i)
        capture_s, decide_s = _times(dev, prm)
        _fold_answers(device, uploads, i, decide_s)
        pending[i] = _pending(uploads, i, decide_s)
        can_send[i] = pending[i] < prm["max_queue"]
        cached = _cached_class(device, frames, prm, i)
        reuse_right[i] = cached >= 0 and cached == np.int64(frames[frame, prm["col_label"]])
        for r in range(on_time.shape[1]):
            answer_s = _answer_time(tables, dev, frame, r, decide_s)[2]
            answer_delay[i, r] = answer_s - capture_s
            on_time[i, r] = can_send[i] and answer_s <= capture_s + prm["deadline_s"] + 1e-12


@jit
def _check(device, actions, n_actions, mode):
    """The first problem with this step's input, before anything changes: a return code and the device."""
    for i in range(actions.shape[0]):
        status = device[i]["status"]
        if status == NOT_STARTED:
            return NOT_RESET, i
        if status == OVER and mode != NEXT_STEP:
            return EPISODE_OVER, i
        if status == RUNNING and not 0 <= actions[i] < n_actions:
            return BAD_ACTION, i
    return OK, -1


@jit
def step(state, tables, buffers, actions, mode):
    """Apply one action per device, then observe; returns (code, device): OK, or the first problem (no change).

    Per device: at the decision time (capture + the student's time), a remote action is refused if the send
    buffer is full, else it is sent (``_send``); the answer used is scored (``_score``); the device advances to
    its next frame (``_advance``); the outcome is recorded. ``mode``: NO_AUTORESET (an ended episode must be reset
    by the caller), NEXT_STEP (Gymnasium's default: the step after the end starts a new episode, action ignored,
    reward 0, ``stepped`` False; ``_restart``) or SAME_STEP (SB3: the ended episode's observation goes to
    ``final_obs`` and the new episode's to ``obs``; ``_restart_same_step``).
    """
    device, uploads, pieces = state
    prm = tables[T_PARAMS][0]
    out = buffers[B_OUT]
    code, where = _check(device, actions, prm["n_actions"], mode)
    if code != OK:
        return code, where
    for i in range(actions.shape[0]):
        if device[i]["status"] == OVER:
            _restart(state, tables, out, i)
            continue
        dev = device[i]
        action = actions[i]
        frame = _frame(device, pieces, tables[T_SCENES], i)
        capture_s, decide_s = _times(dev, prm)
        true_mbps, dev["segment"] = _mbps_at(tables[T_SEGMENTS], tables[T_TRACE_INDEX], tables[T_TRACE_PERIOD],
                                             dev["trace"], decide_s, dev["segment"])
        # the cache already holds every answer back by decide_s: observe folded them at this very decision time
        remote = 0 < action < prm["n_actions"] - 1
        refused = remote and _pending(uploads, i, decide_s) >= prm["max_queue"]
        sent = remote and not refused
        nbytes, answer_s = _send(state, tables, i, frame, action - 1, capture_s, decide_s) if sent else (0.0, np.inf)
        on_time = answer_s <= capture_s + prm["deadline_s"] + 1e-12
        latency_ms = ((answer_s - capture_s) * 1000.0 if on_time else prm["deadline_ms"] if sent
                      else prm["student_s"] * 1000.0)
        correct, reused, reward = _score(device, tables[T_FRAMES], prm, i, frame, action, on_time, nbytes)
        truncated = _advance(device, pieces, tables[T_FRAMES], prm, i, action, frame, sent)
        _record(out, i, reward, truncated, correct, on_time, sent, refused, latency_ms, nbytes, true_mbps, action,
                dev["trace"], frame, reused)
    observe(state, tables, buffers, 0, actions.shape[0])
    if mode == SAME_STEP:
        _restart_same_step(state, tables, buffers)
    return OK, -1
