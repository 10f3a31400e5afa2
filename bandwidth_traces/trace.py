"""The core trace type: piecewise-constant throughput over time, periodic (it wraps around at its end).

A trace answers two questions the environment asks on every offload: how fast is the link at time t
(`mbps_at`), and when would an upload of n bytes that starts at t finish (`transfer_time`). Both wrap
around at the end of the trace, as Mahimahi and Pensieve replay traces. The environment asks them of its compiled
copy of the traces (``envs.kernel``); these NumPy methods are the reference its tests compare with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

BITS_PER_MBIT = 1e6


@dataclass(frozen=True, eq=False)
class Trace:
    """Immutable piecewise-constant throughput trace.

    Attributes:
        name: file name (or a synthetic name) identifying the trace within its family.
        family: the trace set it belongs to (the folder name, e.g. ``fcc``).
        times_s: segment start times in seconds, strictly increasing, starting at 0.
        mbps: throughput in Mbit/s holding from ``times_s[i]`` to ``times_s[i + 1]`` (to ``duration_s`` for the last).
        duration_s: the trace's period; replay wraps around after it.
        source: where the trace came from (file path or generator description).
    """

    name: str
    family: str
    times_s: NDArray[np.float64]
    mbps: NDArray[np.float64]
    duration_s: float
    source: str = ""
    _cum_bits: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        times = np.array(self.times_s, dtype=np.float64)
        mbps = np.array(self.mbps, dtype=np.float64)
        where = f"trace {self.family}/{self.name}" + (f" ({self.source})" if self.source else "")
        if times.ndim != 1 or times.shape != mbps.shape or times.size == 0:
            raise ValueError(f"{where}: times_s and mbps must be 1-D arrays of equal, non-zero length")
        if times[0] != 0.0:
            raise ValueError(f"{where}: times_s must start at 0, got {times[0]}")
        if np.any(np.diff(times) <= 0):
            raise ValueError(f"{where}: times_s must be strictly increasing")
        if not np.isfinite(mbps).all() or (mbps < 0).any():
            raise ValueError(f"{where}: mbps must be finite and >= 0")
        if not (mbps > 0).any():
            raise ValueError(f"{where}: throughput is zero everywhere; no byte could ever be sent")
        if not self.duration_s > times[-1]:
            raise ValueError(f"{where}: duration_s ({self.duration_s}) must exceed the last segment start ({times[-1]})")
        times.flags.writeable = False
        mbps.flags.writeable = False
        seg = np.diff(np.append(times, self.duration_s))
        cum = np.concatenate([[0.0], np.cumsum(mbps * BITS_PER_MBIT * seg)])
        cum.flags.writeable = False
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "mbps", mbps)
        object.__setattr__(self, "duration_s", float(self.duration_s))
        object.__setattr__(self, "_cum_bits", cum)

    @property
    def segment_s(self) -> NDArray[np.float64]:
        """Length of each constant-throughput segment in seconds."""
        return np.diff(np.append(self.times_s, self.duration_s))

    @property
    def total_bits(self) -> float:
        """Bits the link can carry over one period of the trace."""
        return float(self._cum_bits[-1])

    @property
    def mean_mbps(self) -> float:
        """Time-weighted mean throughput over the whole trace."""
        return self.total_bits / BITS_PER_MBIT / self.duration_s

    def mbps_at(self, t_s: ArrayLike) -> NDArray[np.float64] | float:
        """Throughput in Mbit/s at time(s) ``t_s`` (wrapping around the period)."""
        t = np.asarray(t_s, dtype=np.float64)
        idx = np.searchsorted(self.times_s, np.mod(t, self.duration_s), side="right") - 1
        out = self.mbps[idx]
        return float(out) if out.ndim == 0 else out

    def transfer_time(self, start_s: ArrayLike, nbytes: ArrayLike) -> NDArray[np.float64] | float:
        """Seconds needed to deliver ``nbytes`` starting at ``start_s``, integrating throughput (with wrap-around).

        Waits through zero-throughput outages. Broadcasts over array arguments.
        """
        shape = np.broadcast(np.asarray(start_s), np.asarray(nbytes)).shape
        out = self._pack().transfer(np.zeros(shape, dtype=np.intp), start_s, nbytes)
        return float(out) if out.ndim == 0 else out

    def _pack(self) -> _Packed:
        packed = self.__dict__.get("_packed_cache")
        if packed is None:
            packed = _Packed([self])
            object.__setattr__(self, "_packed_cache", packed)
        return packed

    def resample(self, step_s: float = 1.0) -> NDArray[np.float64]:
        """Mean throughput (Mbit/s) over consecutive windows of ``step_s`` covering whole periods (bytes preserved)."""
        n = int(np.floor(self.duration_s / step_s + 1e-9))
        if n < 1:
            return np.array([self.mean_mbps])
        edges = np.arange(n + 1) * step_s
        return np.diff(self.cumulative_bits(edges)) / BITS_PER_MBIT / step_s

    def cumulative_bits(self, t_s: ArrayLike) -> NDArray[np.float64]:
        """Bits deliverable from time 0 up to ``t_s`` (unwrapped: grows by ``total_bits`` per period)."""
        t = np.asarray(t_s, dtype=np.float64)
        wraps = np.floor(t / self.duration_s)
        phase = t - wraps * self.duration_s
        idx = np.searchsorted(self.times_s, phase, side="right") - 1
        return wraps * self.total_bits + self._cum_bits[idx] + self.mbps[idx] * BITS_PER_MBIT * (phase - self.times_s[idx])

    def scaled(self, factor: float) -> Trace:
        """The same trace with every throughput multiplied by ``factor`` (a faster or slower network of the same
        shape, for bandwidth sweeps). Name, family and timing stay, so splits by file are unchanged."""
        factor = float(factor)
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"trace scale factor must be a finite number > 0, got {factor}")
        return Trace(self.name, self.family, self.times_s, self.mbps * factor, self.duration_s,
                     f"{self.source or self.name} x{factor:g}")

    def __repr__(self) -> str:
        return (f"Trace({self.family}/{self.name}, {self.times_s.size} segments, {self.duration_s:.1f} s, "
                f"mean {self.mean_mbps:.3f} Mbit/s)")


class _Packed:
    """Traces concatenated into flat (ragged) arrays, with per-trace offsets precomputed once.

    Each trace's times and cumulative bits are shifted so that the concatenation is increasing across trace
    boundaries; one flat ``searchsorted`` then finds a value within its own trace, so a batch of lookups is one
    NumPy call (``Trace.transfer_time`` packs its one trace).
    """

    def __init__(self, traces: Sequence[Trace]):
        sizes = np.array([t.times_s.size for t in traces])
        self.base = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # first segment of each trace in the flat arrays
        self.last = self.base + sizes - 1
        self.times = np.concatenate([t.times_s for t in traces])
        self.mbps = np.concatenate([t.mbps for t in traces])
        # cumulative bits at each segment start, plus one closing entry per trace (the period's total)
        self.cum = np.concatenate([np.append(t.cumulative_bits(t.times_s), t.total_bits) for t in traces])
        self.cum_base = self.base + np.arange(len(traces))
        self.duration = np.array([t.duration_s for t in traces])
        self.period_bits = np.array([t.total_bits for t in traces])
        self._t_off = np.concatenate([[0.0], np.cumsum(self.duration[:-1] + 1.0)])
        self._t_flat = self.times + np.repeat(self._t_off, sizes)
        self._c_off = np.concatenate([[0.0], np.cumsum(self.period_bits[:-1] + 1.0)])
        self._c_flat = self.cum + np.repeat(self._c_off, sizes + 1)

    def _segment(self, row: NDArray, phase: NDArray) -> NDArray[np.intp]:
        """Flat index of the segment holding ``phase`` (in [0, duration)) of each row's trace."""
        i = np.searchsorted(self._t_flat, phase + self._t_off[row], side="right") - 1
        return np.clip(i, self.base[row], self.last[row])

    def transfer(self, row: NDArray, start_s: ArrayLike, nbytes: ArrayLike) -> NDArray[np.float64]:
        start, nb, row = np.broadcast_arrays(np.asarray(start_s, np.float64), np.asarray(nbytes, np.float64), row)
        if not np.isfinite(nb).all() or (nb < 0).any():
            raise ValueError("nbytes must be finite and >= 0")
        if not np.isfinite(start).all():
            raise ValueError("start_s must be finite")
        dur = self.duration[row]
        period = self.period_bits[row]
        phase = start - np.floor(start / dur) * dur
        i = self._segment(row, phase)
        local = i - self.base[row]
        cum_i = self.cum[self.cum_base[row] + local]
        target = cum_i + self.mbps[i] * BITS_PER_MBIT * (phase - self.times[i]) + nb * 8.0
        # earliest time the cumulative reaches target: k whole periods, then `rem` bits into the next one
        k = np.maximum(np.ceil(target / period) - 1.0, 0.0)
        rem = target - k * period
        jc = np.searchsorted(self._c_flat, rem + self._c_off[row], side="left") - 1  # flat index into cum
        jl = np.clip(jc - self.cum_base[row], 0, self.last[row] - self.base[row])  # segment within the trace
        j = self.base[row] + jl
        rate = self.mbps[j] * BITS_PER_MBIT
        t_end = self.times[j] + (rem - self.cum[self.cum_base[row] + jl]) / np.where(rate > 0, rate, 1.0)
        return np.where(nb > 0, np.maximum(k * dur + t_end - phase, 0.0), 0.0)
