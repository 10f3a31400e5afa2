"""Loading trace folders, the deterministic train/test split, and where the real traces live."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from offload_common.files import check_input_path, shared_data_dir

from .formats import DEFAULT_MAHIMAHI_WINDOW_MS, TraceFormatError, parse_trace
from .trace import Trace

TRACES_ENV = "OFFLOAD_GYM_TRACES"


def shared_traces_dir() -> Path | None:
    """The real traces folder: ``$OFFLOAD_GYM_TRACES``, ``$OFFLOAD_GYM_SHARED/traces``, or ``../shared/traces``
    (``offload_common.files.shared_data_dir``). None when absent."""
    return shared_data_dir("traces", TRACES_ENV)


def _trace_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith((".", "README")))


def load_traces(path: str | os.PathLike, window_ms: float = DEFAULT_MAHIMAHI_WINDOW_MS) -> list[Trace]:
    """Load one trace file, or every trace file under a directory (recursively); family = the file's folder name.

    Raises FileNotFoundError for a missing path and TraceFormatError (naming file and line) for a bad file.
    """
    if str(path).strip() == "":
        raise ValueError("trace path is empty: expected a trace file or a folder of them (an empty path would read "
                         "the current folder)")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trace path {path} does not exist (expected a trace file or a folder of them)")
    check_input_path(path, "trace path", "either", "a trace file or a folder of them")
    files = [path] if path.is_file() else _trace_files(path)
    if not files:
        raise TraceFormatError(path, None, "folder holds no trace files")
    return [parse_trace(f, family=f.parent.name, window_ms=window_ms) for f in files]


def families(traces: Iterable[Trace]) -> dict[str, list[Trace]]:
    """Group traces by family, families and members in name order."""
    out: dict[str, list[Trace]] = {}
    for t in sorted(traces, key=lambda t: (t.family, t.name)):
        out.setdefault(t.family, []).append(t)
    return out


def split(traces: Sequence[Trace], test_fraction: float = 0.3, seed: int = 0) -> tuple[list[Trace], list[Trace]]:
    """Deterministic train/test split by file within each family.

    Each file is ranked by a hash of (seed, family, name); the lowest ``round(test_fraction * n)`` go to test (at
    least one when a family has two or more files and the fraction is positive). The result does not depend on
    input order, and the same file lands on the same side for the same seed and family membership.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    train: list[Trace] = []
    test: list[Trace] = []
    for fam, members in families(traces).items():
        ranked = sorted(members, key=lambda t: (zlib.crc32(f"{seed}:{fam}:{t.name}".encode()), t.name))
        n_test = int(round(test_fraction * len(ranked)))
        if test_fraction > 0 and len(ranked) >= 2:
            n_test = min(max(n_test, 1), len(ranked) - 1) if test_fraction < 1 else len(ranked)
        test += ranked[:n_test]
        train += ranked[n_test:]
    key = lambda t: (t.family, t.name)  # noqa: E731
    return sorted(train, key=key), sorted(test, key=key)
