"""Trace file formats: Pensieve-style "cooked" text and Mahimahi packet-delivery files, with auto-detection.

cooked:    one sample per line, ``time_s throughput_Mbps`` (whitespace-separated); the throughput holds from its
           timestamp to the next one. Used by the FCC and Norway HSDPA sets as re-published by Pensieve/Genet.
mahimahi:  one integer millisecond timestamp per line; each line is an opportunity to send one 1500-byte packet
           (a timestamp repeats when several packets fit in that millisecond); the file repeats when it ends.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .trace import Trace

MAHIMAHI_PACKET_BYTES = 1500
DEFAULT_MAHIMAHI_WINDOW_MS = 100


class TraceFormatError(ValueError):
    """A trace file does not follow its format; the message names the file, the line and what was expected."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


def detect_format(path: str | os.PathLike) -> str:
    """Return ``"cooked"`` (two columns) or ``"mahimahi"`` (one integer column) from the first data line."""
    path = Path(path)
    with path.open("r", encoding="ascii", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) == 2:
                return "cooked"
            if len(fields) == 1:
                return "mahimahi"
            raise TraceFormatError(path, lineno, f"expected 2 columns 'time_s throughput_Mbps' (cooked) or 1 integer "
                                                 f"millisecond timestamp (mahimahi), found {len(fields)} fields")
    raise TraceFormatError(path, None, "empty file: expected at least one data line")


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise TraceFormatError(path, None, f"not plain ASCII text ({exc.reason} at byte {exc.start})") from None
    rows = [(i, line.split()) for i, line in enumerate(text.splitlines(), 1)]
    rows = [(i, f) for i, f in rows if f]
    if not rows:
        raise TraceFormatError(path, None, "empty file: expected at least one data line")
    return rows


def parse_cooked(path: str | os.PathLike, family: str | None = None) -> Trace:
    """Parse a cooked ``time_s throughput_Mbps`` file into a Trace (times shifted to start at 0)."""
    path = Path(path)
    rows = _data_lines(path)
    times = np.empty(len(rows))
    mbps = np.empty(len(rows))
    for k, (lineno, fields) in enumerate(rows):
        if len(fields) != 2:
            raise TraceFormatError(path, lineno, f"expected 2 columns 'time_s throughput_Mbps', found {len(fields)}")
        try:
            t, v = float(fields[0]), float(fields[1])
        except ValueError:
            raise TraceFormatError(path, lineno, f"non-numeric field in {' '.join(fields)!r}: expected two numbers") from None
        if not math.isfinite(t):
            raise TraceFormatError(path, lineno, f"time {fields[0]!r} is not a finite number of seconds")
        if math.isnan(v) or v < 0 or math.isinf(v):
            raise TraceFormatError(path, lineno, f"throughput {fields[1]!r} must be a finite number >= 0 Mbit/s")
        if k and t <= times[k - 1]:
            kind = "decreasing" if t < times[k - 1] else "repeated"
            raise TraceFormatError(path, lineno, f"{kind} timestamp {t} after {times[k - 1]}: times must increase")
        times[k], mbps[k] = t, v
    if not (mbps > 0).any():
        raise TraceFormatError(path, None, "throughput is zero everywhere: not a usable link trace")
    times -= times[0]
    # the last sample holds for one typical step (the median spacing), as it would have been measured
    step = float(np.median(np.diff(times))) if times.size > 1 else 1.0
    return Trace(name=path.name, family=family or path.parent.name, times_s=times, mbps=mbps,
                 duration_s=float(times[-1] + step), source=str(path))


def parse_mahimahi(path: str | os.PathLike, family: str | None = None,
                   window_ms: float = DEFAULT_MAHIMAHI_WINDOW_MS) -> Trace:
    """Parse a Mahimahi delivery-opportunity file into throughput per ``window_ms`` window, keeping every byte."""
    if not window_ms > 0:
        raise ValueError(f"window_ms must be > 0, got {window_ms}")
    path = Path(path)
    rows = _data_lines(path)
    stamps = np.empty(len(rows), dtype=np.int64)
    prev = 0
    for k, (lineno, fields) in enumerate(rows):
        if len(fields) != 1:
            raise TraceFormatError(path, lineno, f"expected 1 column (integer millisecond timestamp), found {len(fields)}")
        try:
            ms = int(fields[0])
        except ValueError:
            raise TraceFormatError(path, lineno, f"non-numeric field {fields[0]!r}: expected an integer millisecond timestamp") from None
        if ms < 0:
            raise TraceFormatError(path, lineno, f"negative timestamp {ms}: expected milliseconds >= 0")
        if ms < prev:
            raise TraceFormatError(path, lineno, f"decreasing timestamp {ms} after {prev}: timestamps must not decrease")
        stamps[k] = prev = ms
    period_ms = int(stamps[-1])
    if period_ms == 0:
        raise TraceFormatError(path, None, "all timestamps are 0: the trace has no duration (its period is the last timestamp)")
    n_win = int(math.ceil(period_ms / window_ms))
    # a packet at exactly the period end belongs to the last window, so no byte is lost
    idx = np.minimum((stamps / window_ms).astype(np.int64), n_win - 1)
    packets = np.bincount(idx, minlength=n_win)
    starts = np.arange(n_win) * window_ms
    widths = np.diff(np.append(starts, period_ms))
    mbps = packets * MAHIMAHI_PACKET_BYTES * 8 / (widths / 1000.0) / 1e6
    return Trace(name=path.name, family=family or path.parent.name, times_s=starts / 1000.0, mbps=mbps,
                 duration_s=period_ms / 1000.0, source=str(path))


def parse_trace(path: str | os.PathLike, family: str | None = None, fmt: str = "auto",
                window_ms: float = DEFAULT_MAHIMAHI_WINDOW_MS) -> Trace:
    """Parse one trace file; ``fmt`` is ``auto`` (detect from the content), ``cooked`` or ``mahimahi``."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "cooked":
        return parse_cooked(path, family)
    if fmt == "mahimahi":
        return parse_mahimahi(path, family, window_ms)
    raise ValueError(f"unknown trace format {fmt!r}: expected 'auto', 'cooked' or 'mahimahi'")


def write_cooked(trace: Trace, path: str | os.PathLike) -> None:
    """Write a trace as a cooked file (atomically), so generated traces can be used by other tools."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    body = "".join(f"{t:.6f}\t{v:.6f}\n" for t, v in zip(trace.times_s, trace.mbps))
    tmp.write_text(body, encoding="ascii")
    os.replace(tmp, path)
