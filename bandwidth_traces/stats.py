"""Per-family summary table of trace sets (the ``stats`` CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .generator import family_stats
from .load import families
from .trace import Trace


@dataclass(frozen=True)
class FamilyRow:
    """One line of the stats table. Throughput quantiles are over 1 s windows (time-weighted)."""

    family: str
    files: int
    hours: float
    mean_file_s: float
    mean_mbps: float
    p10_mbps: float
    p50_mbps: float
    p90_mbps: float
    lag1_autocorr: float
    outage_fraction: float  # share of time with zero throughput, at the traces' native resolution
    file_mean_p10: float  # p10 / p90 of the per-file mean throughput: how different the links are
    file_mean_p90: float


def family_table(traces: Sequence[Trace], step_s: float = 1.0) -> list[FamilyRow]:
    """Summarise each family: size, duration, throughput distribution, correlation and outages."""
    rows = []
    for fam, ts in families(traces).items():
        st = family_stats([t.resample(step_s) for t in ts])
        dur = np.array([t.duration_s for t in ts])
        outage = sum(float(t.segment_s[t.mbps == 0].sum()) for t in ts) / dur.sum()
        fm = np.array([t.mean_mbps for t in ts])
        rows.append(FamilyRow(fam, len(ts), float(dur.sum() / 3600), float(dur.mean()),
                              sum(t.total_bits for t in ts) / 1e6 / dur.sum(), st.p10_mbps, st.p50_mbps,
                              st.p90_mbps, st.lag1_autocorr, outage, *np.percentile(fm, [10, 90]).tolist()))
    return rows


def format_table(rows: Sequence[FamilyRow]) -> str:
    """Markdown table of ``family_table`` rows."""
    head = ("| family | files | hours | mean file s | mean Mbit/s | p10 | p50 | p90 | lag-1 s autocorr | outage | "
            "file-mean p10 | file-mean p90 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r.family} | {r.files} | {r.hours:.2f} | {r.mean_file_s:.0f} | {r.mean_mbps:.3f} | {r.p10_mbps:.3f} | "
        f"{r.p50_mbps:.3f} | {r.p90_mbps:.3f} | {r.lag1_autocorr:.3f} | {r.outage_fraction:.1%} | "
        f"{r.file_mean_p10:.3f} | {r.file_mean_p90:.3f} |\n" for r in rows)
    return head + body
