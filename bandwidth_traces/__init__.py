"""Real network bandwidth traces: formats, loading, validation, splits, and a fitted generator.

Public API: ``Trace`` (one piecewise-constant, wrapping throughput trace), ``load_traces``, ``split``,
``TraceFormatError``, ``MarkovTraceModel`` and ``default_traces`` (real traces from ``../shared`` when present, else
the embedded fitted generator).
"""

from __future__ import annotations

from .formats import TraceFormatError, detect_format, parse_cooked, parse_mahimahi, parse_trace, write_cooked
from .generator import FamilyStats, MarkovTraceModel, embedded_models, embedded_traces, family_stats
from .load import families, load_traces, shared_traces_dir, split
from .trace import Trace

__all__ = [
    "EMBEDDED_ORIGIN", "FamilyStats", "MarkovTraceModel", "Trace", "TraceFormatError", "default_traces", "detect_format",
    "embedded_models", "embedded_traces", "families", "family_stats", "load_traces", "parse_cooked",
    "parse_mahimahi", "parse_trace", "shared_traces_dir", "split", "write_cooked",
]


EMBEDDED_ORIGIN = "embedded generator (bandwidth_traces/params/*.json)"


def default_traces(path: str | None = None, seed: int = 0) -> tuple[list[Trace], str]:
    """Traces for the main job and where they came from: ``path`` (``"embedded"`` forces the fitted generator),
    else ``../shared/traces``, else the generator."""
    if path == "embedded":
        return embedded_traces(seed=seed), EMBEDDED_ORIGIN
    if path is not None:
        return load_traces(path), str(path)
    shared = shared_traces_dir()
    if shared is not None:
        return load_traces(shared), str(shared)
    return embedded_traces(seed=seed), EMBEDDED_ORIGIN
