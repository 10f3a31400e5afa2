"""Several training seeds of one configuration: grouping runs by seed, across-seed statistics.

One training seed is one draw of a learned controller; a claim about the method needs the spread over draws. Here
every seed's policy is evaluated on exactly the same episodes as the heuristics (``evaluate_many``), so per seed
the paired difference to the best heuristic is clean, and the spread over seeds isolates the training seed's
effect. The across-seed interval is a Student-t interval over the per-seed means (n seeds, n - 1 degrees of
freedom): with 3 seeds it is wide, honestly so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .report import paired_versus
from .rollout import EvalResult

# two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (beyond: a Cornish-Fisher expansion, error < 1e-4)
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788, 2.1604,
         2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555,
         2.0518, 2.0484, 2.0452, 2.0423)

SEED_INTERVAL_NOTE = ("across-seed interval: 95% Student-t interval of the mean over training seeds (n - 1 degrees of "
                      "freedom); evaluation episodes are the same for every seed, so it measures the training seed's "
                      "effect only; with one seed there is no interval")


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` >= 1 degrees of freedom (no SciPy needed)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2) \
        + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)


MAX_SEEDS = 64  # more training runs than this from one command is almost surely a typo (0,...,999); --max-seeds


def check_seed_count(seeds: Sequence[int], limit: int = MAX_SEEDS, flag: str = "--seeds",
                     override: str = "--max-seeds") -> None:
    """Refuse more than ``limit`` seeds (each trains a whole run) before anything starts, naming the override."""
    if len(seeds) > limit:
        raise ValueError(f"{flag}: {len(seeds)} seeds would train {len(seeds)} runs, one after another; the limit is "
                         f"{limit}. Pass {override} {len(seeds)} if you mean it, or give fewer seeds")


def seed_stats(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation, min, max and the 95% Student-t interval of the mean of per-seed values."""
    v = np.asarray(values, np.float64)
    n = int(v.size)
    if n == 0:
        raise ValueError("no per-seed values")
    mean = float(v.mean())
    if n < 2:
        return {"n": n, "mean": mean, "std": float("nan"), "min": float(v.min()), "max": float(v.max()),
                "ci95": [float("nan"), float("nan")]}
    std = float(v.std(ddof=1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "min": float(v.min()), "max": float(v.max()),
            "ci95": [mean - half, mean + half]}


@dataclass(frozen=True)
class SeedGroup:
    """One learned method trained with several seeds: its label and, per seed, the policy name in the results."""

    label: str
    seeds: tuple[int, ...]
    policies: tuple[str, ...]

    @property
    def name(self) -> str:
        """The name of the across-seed entry in reports (e.g. ``ppo (3 seeds)``)."""
        return f"{self.label} ({len(self.seeds)} seeds)"


def across_seeds(results: dict[str, EvalResult], group: SeedGroup, reference: str | None) -> dict[str, Any]:
    """Per family: every seed's accuracy, MB/frame and paired difference to ``reference`` (the best heuristic),
    and their across-seed mean, min, max and 95% Student-t interval.

    The per-seed difference is the mean per-episode accuracy difference on the same episodes, with its bootstrap
    interval over episodes (exactly as in the report's paired table).
    """
    paired = paired_versus({n: results[n] for n in (*group.policies, reference) if n is not None and n in results},
                           reference) if reference else {}
    fams = list(results[group.policies[0]].metrics)
    out: dict[str, Any] = {}
    for fam in fams:
        ms = [results[p].metrics[fam] for p in group.policies]
        acc = seed_stats([m["accuracy"] for m in ms])
        mb = seed_stats([m["mb_per_frame"] for m in ms])
        entry: dict[str, Any] = {
            "seeds": list(group.seeds), "policies": list(group.policies), "episodes": ms[0]["episodes"],
            "accuracy": acc["mean"], "accuracy_ci95": acc["ci95"], "accuracy_min": acc["min"],
            "accuracy_max": acc["max"], "accuracy_std": acc["std"],
            "accuracy_per_seed": [m["accuracy"] for m in ms],
            "accuracy_ci95_per_seed": [m["accuracy_ci95"] for m in ms],
            "mb_per_frame": mb["mean"], "mb_per_frame_per_seed": [m["mb_per_frame"] for m in ms],
            "deadline_miss_rate": float(np.mean([m["deadline_miss_rate"] for m in ms])),
            "interval": "Student t over seeds",
        }
        if paired:
            per = [paired[p][fam] for p in group.policies]
            diff = seed_stats([e["difference"] for e in per])
            entry["vs_best_heuristic"] = {
                "reference": reference, "difference": diff["mean"], "difference_ci95": diff["ci95"],
                "difference_min": diff["min"], "difference_max": diff["max"],
                "per_seed": [{"seed": s, "difference": e["difference"], "difference_ci95": e["difference_ci95"]}
                             for s, e in zip(group.seeds, per)]}
        out[fam] = entry
    return out


def _ci(lo: float, hi: float, sign: bool = False) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "[n/a]"
    f = "{:+.3f}" if sign else "{:.3f}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def seeds_markdown(summaries: dict[str, dict[str, Any]]) -> str:
    """The across-seed section of report.md: per group, accuracy and paired difference per seed and over seeds."""
    lines = ["## Across training seeds", "",
             "Every seed's policy was evaluated on exactly the same episodes as the heuristics. Per seed: mean "
             "[95% bootstrap interval over episodes]; over seeds: mean [95% Student-t interval over seeds] "
             "(min to max). " + SEED_INTERVAL_NOTE + "."]
    for name, fams in summaries.items():
        cols = list(fams)
        first = fams[cols[0]]
        ref = first.get("vs_best_heuristic", {}).get("reference")
        lines += ["", f"### {name}: accuracy", "", "| seed | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        for k, seed in enumerate(first["seeds"]):
            lines.append(f"| {seed} | " + " | ".join(
                f"{fams[c]['accuracy_per_seed'][k]:.3f} {_ci(*fams[c]['accuracy_ci95_per_seed'][k])}" for c in cols)
                + " |")
        lines.append("| **over seeds** | " + " | ".join(
            f"**{fams[c]['accuracy']:.3f}** {_ci(*fams[c]['accuracy_ci95'])} "
            f"({fams[c]['accuracy_min']:.3f} to {fams[c]['accuracy_max']:.3f})" for c in cols) + " |")
        if ref is None:
            continue
        lines += ["", f"### {name}: paired difference to the best tuned heuristic, {ref}", "",
                  "| seed | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        for k, seed in enumerate(first["seeds"]):
            lines.append(f"| {seed} | " + " | ".join(
                f"{fams[c]['vs_best_heuristic']['per_seed'][k]['difference']:+.3f} "
                f"{_ci(*fams[c]['vs_best_heuristic']['per_seed'][k]['difference_ci95'], sign=True)}" for c in cols)
                + " |")
        lines.append("| **over seeds** | " + " | ".join(
            f"**{fams[c]['vs_best_heuristic']['difference']:+.3f}** "
            f"{_ci(*fams[c]['vs_best_heuristic']['difference_ci95'], sign=True)} "
            f"({fams[c]['vs_best_heuristic']['difference_min']:+.3f} to "
            f"{fams[c]['vs_best_heuristic']['difference_max']:+.3f})" for c in cols) + " |")
    return "\n".join(lines) + "\n"
