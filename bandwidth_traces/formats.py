"""Trace file formats: Pensieve-style "cooked" text and Mahimahi packet-delivery files, with auto-detection.

cooked:    one sample per line, ``time_s throughput_Mbps`` (whitespace-separated); the throughput holds from its
           timestamp to the next one. Used by the FCC and Norway HSDPA sets as re-published by Pensieve/Genet.
mahimahi:  one integer millisecond timestamp per line; each line is an opportunity to send one 1500-byte packet
           (a timestamp repeats when several packets fit in that millisecond); the file repeats when it ends.
"""

from __future__ import annotations

import codecs
import math
import os
from pathlib import Path

import numpy as np

from offload_common.files import atomic_write_bytes

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


MAX_MBPS = 10_000.0  # 10 Gbit/s: above any cellular or WiFi uplink; larger values are unit mistakes or corruption
MAX_TIME_S = 1e7  # ~116 days: a trace timestamp beyond this (either sign) is corrupt, not a measurement
MAX_WINDOWS = 50_000_000  # Mahimahi windows per trace (~58 days at 100 ms): beyond that a timestamp is corrupt
# what the first bytes of a file that is not a plain-text trace say about it
_MAGIC = ((b"\x1f\x8b", "a gzip-compressed file (starts with bytes 1f 8b): decompress it first (gunzip -k FILE)"),
          (b"PK\x03\x04", "a zip archive (starts with 'PK'): extract the trace files first"),
          (b"BZh", "a bzip2-compressed file (starts with 'BZh'): decompress it first (bunzip2 -k FILE)"),
          (b"\xfd7zXZ", "an xz-compressed file: decompress it first (unxz -k FILE)"),
          (codecs.BOM_UTF8, "text with a UTF-8 byte-order mark (bytes EF BB BF, as some Windows editors save): "
                            "save it as plain ASCII without the mark"),
          (codecs.BOM_UTF16_LE, "UTF-16 text (byte-order mark FF FE): save it as plain ASCII"),
          (codecs.BOM_UTF16_BE, "UTF-16 text (byte-order mark FE FF): save it as plain ASCII"))


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty lines as (line number, whitespace-separated fields), after checking that the file is plain
    ASCII text in one of the two formats' layouts; errors name the file, the line and the cause."""
    data = path.read_bytes()
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise TraceFormatError(path, None, f"{what}; expected a plain-text trace")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        kind = "a NUL byte (binary data)" if data[exc.start] == 0 else f"byte 0x{data[exc.start]:02x}"
        raise TraceFormatError(path, line, f"not plain ASCII text: {kind} at byte offset {exc.start}; expected "
                                           "numbers separated by spaces or tabs") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise TraceFormatError(path, line, "NUL byte (binary data): expected a plain-text trace")
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if "," in line:
            raise TraceFormatError(path, i, f"comma-separated values {line.strip()[:40]!r} (CSV): expected columns "
                                            "separated by spaces or tabs, 'time_s throughput_Mbps' (cooked) or one "
                                            "integer millisecond timestamp (mahimahi); replace the commas by tabs")
        fields = line.split()
        if fields:
            rows.append((i, fields))
    if not rows:
        raise TraceFormatError(path, None, "empty file: expected at least one data line")
    return rows


def _format_of(path: Path, rows: list[tuple[int, list[str]]]) -> str:
    lineno, fields = rows[0]
    if len(fields) == 2:
        return "cooked"
    if len(fields) == 1:
        return "mahimahi"
    raise TraceFormatError(path, lineno, f"expected 2 columns 'time_s throughput_Mbps' (cooked) or 1 integer "
                                         f"millisecond timestamp (mahimahi), found {len(fields)} fields")


def detect_format(path: str | os.PathLike) -> str:
    """Return ``"cooked"`` (two columns) or ``"mahimahi"`` (one integer column) from the first data line."""
    path = Path(path)
    return _format_of(path, _data_lines(path))


def parse_cooked(path: str | os.PathLike, family: str | None = None) -> Trace:
    """Parse a cooked ``time_s throughput_Mbps`` file into a Trace (times shifted to start at 0)."""
    path = Path(path)
    return _cooked(path, _data_lines(path), family)


def _cooked(path: Path, rows: list[tuple[int, list[str]]], family: str | None) -> Trace:
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
        if abs(t) > MAX_TIME_S:
            raise TraceFormatError(path, lineno, f"time {fields[0]} s is beyond +-{MAX_TIME_S:g} s (~116 days), "
                                                 "longer than any recorded trace: a wrong unit or a corrupt file")
        if math.isnan(v) or v < 0 or math.isinf(v):
            raise TraceFormatError(path, lineno, f"throughput {fields[1]!r} must be a finite number >= 0 Mbit/s")
        if v > MAX_MBPS:
            raise TraceFormatError(path, lineno, f"throughput {fields[1]} Mbit/s is above {MAX_MBPS:g} Mbit/s "
                                                 "(10 Gbit/s), beyond any real uplink: a wrong unit (bit/s or kbit/s "
                                                 "instead of Mbit/s?) or a corrupt file")
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
    path = Path(path)
    return _mahimahi(path, _data_lines(path), family, window_ms)


def _mahimahi(path: Path, rows: list[tuple[int, list[str]]], family: str | None, window_ms: float) -> Trace:
    if not window_ms > 0:
        raise ValueError(f"window_ms must be > 0, got {window_ms}")
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
    if n_win > MAX_WINDOWS:
        raise TraceFormatError(path, rows[-1][0], f"last timestamp {period_ms} ms ({period_ms / 86_400_000:.0f} days) "
                                                  "makes the trace absurdly long: a corrupt timestamp?")
    # a packet at exactly the period end belongs to the last window, so no byte is lost
    idx = np.minimum((stamps / window_ms).astype(np.int64), n_win - 1)
    packets = np.bincount(idx, minlength=n_win)
    starts = np.arange(n_win) * window_ms
    widths = np.diff(np.append(starts, period_ms))
    mbps = packets * MAHIMAHI_PACKET_BYTES * 8 / (widths / 1000.0) / 1e6
    if mbps.max() > MAX_MBPS:
        w = int(np.argmax(mbps > MAX_MBPS))
        lineno = rows[int(np.searchsorted(idx, w))][0]
        raise TraceFormatError(path, lineno, f"{packets[w]} packets in the {window_ms:g} ms window from "
                                             f"{starts[w]:g} ms make {mbps[w]:.0f} Mbit/s, above {MAX_MBPS:g} Mbit/s (10 Gbit/s): "
                                             "repeated or corrupt timestamps?")
    return Trace(name=path.name, family=family or path.parent.name, times_s=starts / 1000.0, mbps=mbps,
                 duration_s=period_ms / 1000.0, source=str(path))


def parse_trace(path: str | os.PathLike, family: str | None = None, fmt: str = "auto",
                window_ms: float = DEFAULT_MAHIMAHI_WINDOW_MS) -> Trace:
    """Parse one trace file; ``fmt`` is ``auto`` (detect from the content), ``cooked`` or ``mahimahi``."""
    if fmt not in ("auto", "cooked", "mahimahi"):
        raise ValueError(f"unknown trace format {fmt!r}: expected 'auto', 'cooked' or 'mahimahi'")
    path = Path(path)
    rows = _data_lines(path)
    fmt = _format_of(path, rows) if fmt == "auto" else fmt
    if fmt == "cooked":
        return _cooked(path, rows, family)
    return _mahimahi(path, rows, family, window_ms)


def write_cooked(trace: Trace, path: str | os.PathLike) -> None:
    """Write a trace as a cooked file (atomically), so generated traces can be used by other tools."""
    path = Path(path)
    body = "".join(f"{t:.6f}\t{v:.6f}\n" for t, v in zip(trace.times_s, trace.mbps))
    atomic_write_bytes(path, body.encode("ascii"))
