"""The evaluation report: report.json (policy -> family -> metrics), report.md (comparison table) and PNG plots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.policies import HEURISTICS, REFERENCES
from offload_common.files import atomic_path, atomic_write_text, staged_files, write_json

from .rollout import EvalResult

ORACLE_NOTE = "oracle = hindsight upper reference (knows true throughput and correctness; not deployable)"
LINK_ORACLE_NOTE = ("link-oracle = information-limited reference (knows the true future throughput, not "
                    "correctness: cachenet's rule with the true in-time test, greedy per frame; its search contains "
                    "cachenet's tuned point, so it scores at least as well as cachenet on the tuning episodes; a "
                    "reference, not a bound; not deployable)")
GREEDY_NOTE = ("learned-greedy = one-step learned baseline (an MLP's per-action P(answer used is right), fitted on "
               "training rollouts, greedy with a tuned send bonus): a tuned reference a learned policy must beat")


def _notes(results: dict[str, EvalResult]) -> list[str]:
    """The notes a report carries: the oracle's always, the link-oracle's and learned-greedy's when evaluated, and
    one per reference that falls below the best tuned reference on these episodes."""
    return ([ORACLE_NOTE] + ([LINK_ORACLE_NOTE] if "link-oracle" in results else [])
            + ([GREEDY_NOTE] if "learned-greedy" in results else []) + references_below(results))


def best_heuristic(results: dict[str, EvalResult]) -> str | None:
    """The best tuned reference a learned policy must beat: the tuned heuristic or learned-greedy (``HEURISTICS``)
    with the highest overall accuracy on these (held-out) episodes, the reference a learned policy's claim is
    made against (picking it on the test episodes is the conservative choice)."""
    cands = {n: results[n].metrics["all"]["accuracy"] for n in HEURISTICS if n in results and n not in REFERENCES}
    return max(cands, key=cands.get) if cands else None


def references_below(results: dict[str, EvalResult]) -> list[str]:
    """A sentence for every reference (``REFERENCES``: oracle, link-oracle) whose overall accuracy on these
    episodes is below the best tuned reference's: it is not an upper reference here, and the report says so."""
    best = best_heuristic(results)
    if best is None:
        return []
    top = results[best].metrics["all"]["accuracy"]
    out = []
    for name in REFERENCES:
        if name in results and results[name].metrics["all"]["accuracy"] < top:
            acc = results[name].metrics["all"]["accuracy"]
            why = (" although it scores at least as well as cachenet on the tuning episodes by construction: "
                   "tuning-to-test variance of a greedy reference, not a bound") if name == "link-oracle" else ""
            out.append(f"{name} ({acc:.3f}) falls below the best tuned reference {best} ({top:.3f}) on these test "
                       f"episodes, so it is no upper reference here{why}")
    return out


def grid_edges(extra: dict[str, Any] | None) -> dict[str, Any]:
    """Which tuned parameters hit an edge of their grid (``agents.policies.tuning``), from the tuning record a
    workflow passes in ``extra`` (``heuristic_tuning`` or ``cbo_tuning``)."""
    for key in ("heuristic_tuning", "cbo_tuning"):
        tuning = (extra or {}).get(key)
        if isinstance(tuning, dict) and "grid_edges" in tuning:
            return tuning["grid_edges"]
    return {}


def report_json(results: dict[str, EvalResult]) -> dict[str, Any]:
    """``{policy: {family: metrics}}`` (families plus ``all``); metrics include per-episode accuracies."""
    return {name: r.metrics for name, r in results.items()}


def paired_versus(results: dict[str, EvalResult], reference: str | None = "cbo", seed: int = 0) -> dict[str, Any]:
    """Per policy and family: mean per-episode accuracy difference to ``reference`` (same episodes) with a
    bootstrap 95% interval, and the share of the reference-to-oracle gap closed."""
    from .rollout import bootstrap_ci

    if reference is None or reference not in results:
        return {}
    ref = results[reference].metrics
    oracle = results.get("oracle")
    out: dict[str, Any] = {}
    for name, r in results.items():
        if name in (reference, "oracle"):
            continue
        out[name] = {}
        for fam, m in r.metrics.items():
            diff = np.array(m["episode_accuracy"]) - np.array(ref[fam]["episode_accuracy"])
            entry = {"difference": float(diff.mean()), "difference_ci95": list(bootstrap_ci(diff, seed))}
            if oracle is not None:
                gap = oracle.metrics[fam]["accuracy"] - ref[fam]["accuracy"]
                entry["gap_closed"] = float(diff.mean() / gap) if gap > 0 else float("nan")
            out[name][fam] = entry
    return out


def report_meta(results: dict[str, EvalResult], extra: dict[str, Any] | None = None,
                paired: dict[str, Any] | None = None) -> dict[str, Any]:
    """What produced the report: each policy's parameters (e.g. tuned thresholds), paired comparison to CBO,
    notes, run details."""
    best = best_heuristic(results)
    paired = paired_versus(results, best) if paired is None else paired
    return {"policies": {name: r.description for name, r in results.items()}, "best_heuristic": best,
            "best_heuristic_among": [n for n in HEURISTICS if n in results],
            "paired_vs_best_heuristic": paired, "paired_vs_cbo": paired_versus(results, "cbo"),
            "references_below_best": references_below(results), "grid_edges": grid_edges(extra),
            "notes": _notes(results), "run": extra or {}}


def report_markdown(results: dict[str, EvalResult], title: str = "Evaluation on held-out traces and scenes",
                    paired: dict[str, Any] | None = None) -> str:
    """Accuracy (95% bootstrap interval) per family and policy, best deployable policy per family in bold."""
    fams = [f for f in next(iter(results.values())).metrics if f != "all"] + ["all"]
    best = {}
    for fam in fams:
        cands = {n: r.metrics[fam]["accuracy"] for n, r in results.items() if n not in REFERENCES and fam in r.metrics}
        best[fam] = max(cands, key=cands.get) if cands else None
    lines = [f"# {title}", "", "Accuracy of the answers used (mean over episodes, [95% bootstrap interval]). "
             "Best deployable policy per family in **bold**; " + "; ".join(_notes(results)) + ".", "",
             "| policy | " + " | ".join(f"{f} (n={results[next(iter(results))].metrics[f]['episodes']})" for f in fams)
             + " | miss rate | MB/frame | p90 latency ms |",
             "|---|" + "---:|" * (len(fams) + 3)]
    for name, r in results.items():
        cells = []
        for fam in fams:
            m = r.metrics.get(fam)
            if m is None:
                cells.append("-")
                continue
            txt = f"{m['accuracy']:.3f} [{m['accuracy_ci95'][0]:.3f}, {m['accuracy_ci95'][1]:.3f}]"
            cells.append(f"**{txt}**" if best[fam] == name else txt)
        a = r.metrics["all"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {a['deadline_miss_rate']:.2f} | "
                     f"{a['mb_per_frame']:.4f} | {a['latency_ms']['p90']:.0f} |")
    lines += ["", "Action mix (all families):", "", "| policy | " +
              " | ".join(next(iter(results.values())).metrics["all"]["action_mix"]) + " |",
              "|---|" + "---:|" * len(next(iter(results.values())).metrics["all"]["action_mix"])]
    for name, r in results.items():
        mix = r.metrics["all"]["action_mix"]
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in mix.values()) + " |")
    best = best_heuristic(results)
    paired = paired_versus(results, best) if paired is None else paired
    learned = [n for n in paired if n not in ("local", "teacher", "random", "reuse") and not n.startswith("offload@")]
    if learned:
        lines += ["", f"Paired difference to the best tuned heuristic (the best of the tuned rules and "
                  f"learned-greedy), {best} (same episodes; mean per-episode "
                  f"accuracy difference [95% bootstrap interval]; share of the {best}-to-oracle gap closed):", "",
                  "| policy | " + " | ".join(fams) + " |", "|---|" + "---:|" * len(fams)]
        for name in learned:
            cells = []
            for fam in fams:
                e = paired[name][fam]
                gap = f", {e['gap_closed']:.0%} of gap" if "gap_closed" in e else ""
                cells.append(f"{e['difference']:+.3f} [{e['difference_ci95'][0]:+.3f}, {e['difference_ci95'][1]:+.3f}]{gap}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_report(results: dict[str, EvalResult], trace_mean_mbps: np.ndarray, action_names: list[str],
                out_dir: Path) -> list[Path]:
    """Accuracy per family with intervals; accuracy vs trace throughput; action mix vs measured throughput; latency CDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    names = list(results)
    fams = [f for f in results[names[0]].metrics if f != "all"]

    def save(fig, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(names) * len(fams) / 2), 4.2))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        m = [results[name].metrics[f] for f in fams]
        acc = np.array([x["accuracy"] for x in m])
        lo = acc - np.array([x["accuracy_ci95"][0] for x in m])
        hi = np.array([x["accuracy_ci95"][1] for x in m]) - acc
        ax.bar(np.arange(len(fams)) + k * width, acc, width, yerr=[lo, hi], capsize=2, label=name,
               hatch="//" if name in REFERENCES else None)
    ax.set_xticks(np.arange(len(fams)) + 0.4 - width / 2, fams)
    ax.set_ylabel("accuracy (95% CI)")
    lows = [results[n].metrics[f]["accuracy"] for n in names for f in fams]
    ax.set_ylim(max(0.0, min(lows) - 0.1), min(1.0, max(lows) + 0.05))
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("accuracy per trace family (hatched: references, oracle and link-oracle)")
    save(fig, "accuracy_per_family.png")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    edges = np.quantile(trace_mean_mbps, np.linspace(0, 1, 9))
    for name in names:
        r = results[name].rollout
        x = trace_mean_mbps[r.trace]
        acc = r.correct.mean(1)
        b = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        xs = [np.median(x[b == i]) for i in range(len(edges) - 1) if (b == i).any()]
        ys = [acc[b == i].mean() for i in range(len(edges) - 1) if (b == i).any()]
        ax.plot(xs, ys, marker="o", ms=3, lw=1.2, label=name, ls="--" if name in REFERENCES else "-")
    ax.set_xscale("log")
    ax.set_xlabel("trace mean uplink throughput (Mbit/s, log; octiles of test traces)")
    ax.set_ylabel("mean episode accuracy")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("accuracy vs trace throughput")
    save(fig, "accuracy_vs_throughput.png")

    constant = {"local", "teacher", "random"} | {n for n in names if n.startswith("offload@")}
    shown = [n for n in names if n not in constant][:5] or names[:1]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.8 * len(shown), 3.8), sharey=True, squeeze=False)
    bins = np.logspace(-1.5, 1.2, 13)
    colors = plt.get_cmap("tab10").colors
    for ax, name in zip(axes[0], shown):
        r = results[name].rollout
        est, act = r.est_mbps.ravel(), r.action.ravel()
        idx = np.clip(np.digitize(est, bins) - 1, 0, len(bins) - 2)
        counts = np.zeros((len(bins) - 1, len(action_names)))
        np.add.at(counts, (idx, act), 1)
        keep = counts.sum(1) >= 50  # bins with too few frames say nothing
        share = counts[keep] / counts[keep].sum(1, keepdims=True)
        pos = np.arange(keep.sum())
        bottom = np.zeros(keep.sum())
        for a, label in enumerate(action_names):
            ax.bar(pos, share[:, a], bottom=bottom, color=colors[a % 10], label=label, width=0.85)
            bottom += share[:, a]
        lo, hi = bins[:-1][keep], bins[1:][keep]
        ax.set_xticks(pos, [f"{x:.2g}-{y:.2g}" for x, y in zip(lo, hi)], rotation=60, fontsize=7)
        ax.set_title(name)
        ax.set_xlabel("measured throughput (Mbit/s)")
    axes[0, 0].set_ylabel("share of frames")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    save(fig, "action_mix_vs_throughput.png")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in names:
        lat = np.sort(results[name].rollout.latency_ms.ravel())
        ax.plot(lat, np.arange(1, lat.size + 1) / lat.size, label=name, lw=1.2)
    ax.set_xlabel("answer latency (ms; late answers count at the deadline)")
    ax.set_ylabel("CDF")
    ax.legend(fontsize=7, ncol=2)
    save(fig, "latency_cdf.png")
    return paths


REPORT_PLOTS = ("accuracy_per_family.png", "accuracy_vs_throughput.png", "action_mix_vs_throughput.png",
                "latency_cdf.png")
REPORT_FILES = ("report.json", "report_meta.json", "report.md", *REPORT_PLOTS)


def is_report_file(path: Path) -> bool:
    """Whether ``path`` is one of the files a report writes, by exact name (never every PNG: a run's learning
    curve or a user's own figure is not the report's). Only those also recorded in the folder's manifest are ever
    replaced or deleted."""
    return path.name in REPORT_FILES


def warnings_markdown(warnings: Sequence[str]) -> str:
    """A report.md section listing ``warnings`` (empty when there are none)."""
    if not warnings:
        return ""
    return "## Warnings\n\n" + "".join(f"- {w}\n" for w in warnings)


def write_report(results: dict[str, EvalResult], out_dir: str | os.PathLike, trace_mean_mbps: np.ndarray,
                 action_names: list[str], extra: dict[str, Any] | None = None, plots: bool = True, *,
                 warnings: Sequence[str] = (), entries: dict[str, dict[str, Any]] | None = None,
                 meta: dict[str, Any] | None = None, sections: Sequence[str] = ()) -> dict[str, Any]:
    """Write report.json, report_meta.json, report.md and the PNGs into ``out_dir``; returns report.json's payload.

    Optional parts for the research workflow: ``warnings`` (a report.md section, and report_meta.json ``warnings``
    and ``notes``), ``entries`` added to report.json (name -> family -> values, e.g. across-seed summaries),
    ``meta`` keys added to report_meta.json, and markdown ``sections`` appended to report.md.

    A report is a set of files that must agree, so all of them are first written into a temporary folder beside
    ``out_dir``: a failure leaves the previous report untouched. A folder that holds only a report is then swapped
    in whole; in a folder that holds more (a run folder, for the main job) each finished file replaces its old
    version, and nothing else there is touched.
    """
    if not results:
        raise ValueError("no policies to report on: expected at least one evaluated policy")
    clash = set(entries or {}) & set(results)
    if clash:
        raise ValueError(f"report entries {sorted(clash)} would replace evaluated policies of the same name")
    with staged_files(out_dir, is_report_file) as build:
        payload = {**report_json(results), **(entries or {})}
        paired = paired_versus(results, best_heuristic(results))
        meta_payload = {**report_meta(results, extra, paired), **(meta or {})}
        if warnings or entries or meta or sections:
            meta_payload["warnings"] = list(warnings)
            meta_payload["notes"] = [*meta_payload["notes"], *warnings]
        markdown = report_markdown(results, paired=paired)
        parts = [warnings_markdown(warnings), *sections]
        if any(parts):
            markdown = markdown.rstrip("\n") + "\n" + "".join("\n" + p.rstrip("\n") + "\n" for p in parts if p)
        write_json(build / "report.json", payload)
        write_json(build / "report_meta.json", meta_payload)
        atomic_write_text(build / "report.md", markdown)
        if plots:
            plot_report(results, trace_mean_mbps, action_names, build)
    return payload
