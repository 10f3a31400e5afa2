"""Accuracy and bytes per frame of every policy against the network's speed and the deadline: the standard figure
of offloading papers (``train_agent.py sweep``).

Two axes, each varied with the other at its baseline: the bandwidth scale (every trace's throughput multiplied by
a factor, ``Trace.scaled``; deadline at the env's default) and the deadline (``EnvConfig.deadline_ms``; traces as
recorded). At every point the heuristics are re-tuned by grid search on the training traces and training scenes
*at that point* (a rule tuned for 1 Mbit/s would be unfairly stale at 0.25 Mbit/s), while learned policies are used
as trained: that is the claim a learned controller has to survive. Every policy at a point faces the same held-out
episodes (traces x scenes), so the points' differences are paired; a point shared by both axes (scale 1, baseline
deadline) is computed once.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.policies import HEURISTICS, REFERENCES, TUNED_REFERENCES, Policy
from offload_common.files import atomic_path, atomic_write_text, staged_files, write_json

from .report import best_heuristic, paired_versus
from .seeds import SeedGroup, seed_stats

if TYPE_CHECKING:  # the env stack loads on use
    from bandwidth_traces import Trace
    from envs import EnvConfig
    from perception import FrameProfile

AXES = ("bandwidth_scale", "deadline_ms")
AXIS_LABELS = {"bandwidth_scale": "bandwidth scale (x the traces' throughput)", "deadline_ms": "deadline (ms)"}
SWEEP_PARTIAL = "sweep-partial.json"  # finished points of a sweep in progress (a killed sweep resumes from them)
SWEEP_FILES = ("sweep.json", "sweep.md", "sweep_bandwidth_scale.png", "sweep_deadline_ms.png", SWEEP_PARTIAL)
# points x policies above which a sweep is refused unless --max-evaluations allows it (each point re-tunes)
MAX_EVALUATIONS = 400
RETUNE_NOTE = ("heuristics (cbo, cbo+teacher, cbo-cond, cachenet, and learned-greedy, whose model is also refitted) "
               "were re-tuned at every point by grid search on "
               "the training traces and training scenes at that point's bandwidth scale and deadline; learned "
               "policies are used as trained (at the bandwidth scales and the deadline of their training: trained_at)")


def describe_training(conditions: dict[str, Any]) -> str:
    """``{"bandwidth_scales": [0.25, 1.0], "deadline_ms": 200}`` -> "bandwidth x0.25, 1 and 200 ms"; with
    ``"deadlines_ms": [100, 400]`` (trained at several deadlines) -> "bandwidth x0.25, 1 and 100, 400 ms"; with
    ``"curriculum_rounds": 3`` -> "bandwidth x0.25, 1 and 200 ms, a curriculum of 3 rounds"; with
    ``"warm_start_per_scale": True`` -> "..., the warm start re-tuned per speed"; ``"action_mask": True`` -> "...,
    actions masked"; ``"residual": True`` -> "..., a residual on learned-greedy"."""
    scales = ", ".join(f"{s:g}" for s in conditions.get("bandwidth_scales", [1.0]))
    several = conditions.get("deadlines_ms")
    deadline = conditions.get("deadline_ms")
    if several:
        text = f"bandwidth x{scales} and " + ", ".join(f"{d:g}" for d in several) + " ms"
    else:
        text = f"bandwidth x{scales} and " + (f"{deadline:g} ms" if deadline is not None else "its deadline")
    rounds = conditions.get("curriculum_rounds")
    text += f", a curriculum of {rounds} round{'s' * (rounds != 1)}" if rounds else ""
    text += ", the warm start re-tuned per speed" if conditions.get("warm_start_per_scale") else ""
    text += ", actions masked" if conditions.get("action_mask") else ""
    return text + (", a residual on learned-greedy" if conditions.get("residual") else "")


def check_sweep_size(points: int, policies: int, limit: int = MAX_EVALUATIONS,
                     override: str = "--max-evaluations") -> None:
    """Refuse a sweep of more than ``limit`` (point, policy) evaluations before any work, naming the override."""
    if points * policies > limit:
        raise ValueError(f"--bandwidth-scales / --deadlines-ms / --policies: {points} sweep points x {policies} "
                         f"policies = {points * policies} evaluations (heuristics re-tuned at every point); the limit "
                         f"is {limit}. Pass {override} {points * policies} if you mean it, or sweep fewer values")


@dataclass(frozen=True)
class SweepPoint:
    """One distinct (bandwidth scale, deadline) combination and the axes it lies on."""

    bandwidth_scale: float
    deadline_ms: float
    axes: tuple[str, ...]


def sweep_points(scales: Sequence[float], deadlines_ms: Sequence[float], base_deadline_ms: float) -> list[SweepPoint]:
    """The distinct points of both axes: (s, base deadline) for every scale s, (1, d) for every deadline d."""
    pts: dict[tuple[float, float], list[str]] = {}
    for s in scales:
        pts.setdefault((float(s), float(base_deadline_ms)), []).append("bandwidth_scale")
    for d in deadlines_ms:
        pts.setdefault((1.0, float(d)), []).append("deadline_ms")
    return [SweepPoint(s, d, tuple(axes)) for (s, d), axes in pts.items()]


def _entry(policy: str, point: SweepPoint, m: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"policy": policy, "kind": kind, "bandwidth_scale": point.bandwidth_scale,
            "deadline_ms": point.deadline_ms, "accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"],
            "mb_per_frame": m["mb_per_frame"], "deadline_miss_rate": m["deadline_miss_rate"],
            "episodes": m["episodes"], "action_mix": m["action_mix"]}


def _versus(best: str | None, paired: dict[str, Any]) -> dict[str, Any]:
    """A learned policy's paired difference to the point's best re-tuned reference: overall and per family, mean
    per-episode difference and its bootstrap 95% interval over the same episodes."""
    out = {"reference": best, "difference": paired["all"]["difference"],
           "difference_ci95": paired["all"]["difference_ci95"], "interval": "paired bootstrap over episodes"}
    out["families"] = {fam: {"difference": v["difference"], "difference_ci95": v["difference_ci95"]}
                       for fam, v in paired.items() if fam != "all"}
    return out


def _kind(name: str, learned: dict[str, Policy]) -> str:
    if name in learned:
        return "learned"
    if name in HEURISTICS:
        return "heuristic (re-tuned at this point)"
    if name in TUNED_REFERENCES:
        return "reference (re-tuned at this point)"
    return "reference" if name in REFERENCES else "baseline"


def sweep_point(profile: FrameProfile, train_traces: Sequence[Trace], test_traces: Sequence[Trace],
                base_config: EnvConfig, names: Sequence[str], learned: dict[str, Policy], groups: Sequence[SeedGroup],
                point: SweepPoint, episodes: int, seed: int, tune_workers: int | None = None
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One sweep point: the heuristics re-tuned on the training traces at that point (on ``tune_workers``
    processes, ``tuned_heuristics``), every policy evaluated on the held-out episodes there; returns its entries
    (one per policy and seed group) and its row (tuning, seconds)."""
    from .suite import Setup, evaluate_on_test, named_policies

    t0 = time.time()
    cfg = base_config.replace(deadline_ms=point.deadline_ms)
    setup = Setup(profile, cfg, [t.scaled(point.bandwidth_scale) for t in train_traces],
                  [t.scaled(point.bandwidth_scale) for t in test_traces])
    policies, tuning = named_policies(setup, list(names), seed, tune_workers=tune_workers)
    policies.update(learned)
    results = evaluate_on_test(setup, policies, episodes, seed)
    best = best_heuristic(results)
    paired = paired_versus(results, best, seed)
    point_entries = [_entry(n, point, r.metrics["all"], _kind(n, learned)) for n, r in results.items()]
    for e in point_entries:
        if e["kind"] == "learned" and e["policy"] in paired:
            e["versus_best"] = _versus(best, paired[e["policy"]])
    for g in groups:
        ms = [results[p].metrics["all"] for p in g.policies]
        acc, mb = seed_stats([m["accuracy"] for m in ms]), seed_stats([m["mb_per_frame"] for m in ms])
        entry = {
            "policy": g.name, "kind": "learned, across seeds", "bandwidth_scale": point.bandwidth_scale,
            "deadline_ms": point.deadline_ms, "accuracy": acc["mean"], "accuracy_ci95": acc["ci95"],
            "accuracy_min": acc["min"], "accuracy_max": acc["max"], "seeds": list(g.seeds),
            "policies": list(g.policies),
            "accuracy_per_seed": [m["accuracy"] for m in ms], "mb_per_frame": mb["mean"],
            "interval": "Student t over seeds", "episodes": ms[0]["episodes"]}
        if best is not None and all(p in paired for p in g.policies):
            per_seed = [paired[p]["all"]["difference"] for p in g.policies]
            d = seed_stats(per_seed)
            entry["versus_best"] = {"reference": best, "difference": d["mean"], "difference_ci95": d["ci95"],
                                    "difference_per_seed": per_seed, "interval": "Student t over seeds"}
        point_entries.append(entry)
    row = {"bandwidth_scale": point.bandwidth_scale, "deadline_ms": point.deadline_ms, "axes": list(point.axes),
           "seconds": round(time.time() - t0, 1), "tuning": tuning}
    return point_entries, row


def run_sweep(profile: FrameProfile, train_traces: Sequence[Trace], test_traces: Sequence[Trace],
              base_config: EnvConfig, names: Sequence[str], learned: dict[str, Policy], groups: Sequence[SeedGroup],
              scales: Sequence[float], deadlines_ms: Sequence[float], episodes: int, seed: int,
              log: Callable[[str], None] = print, *, max_evaluations: int | None = None,
              partial: str | os.PathLike | None = None,
              map_points: Callable[[list[SweepPoint]], list[tuple[list, dict]]] | None = None) -> dict[str, Any]:
    """Evaluate ``names`` (re-tuned per point) and the ``learned`` policies at every sweep point.

    Returns the sweep.json payload: one entry per (axis, value, policy) with accuracy, its bootstrap interval over
    episodes, MB/frame, miss rate and action mix; per seed group one across-seed entry (mean and Student-t
    interval over seeds); per point the heuristics' tuned parameters and the time it took.

    ``max_evaluations`` refuses a larger sweep (points x policies) before any work. With ``partial`` (a JSON file)
    every finished point is saved there, and points already saved by an earlier run of the same sweep (same
    policies, episodes, seed, env config, traces and profile) are reused instead of recomputed, so a killed sweep
    resumes where it stopped with the results an uninterrupted one gives. ``map_points`` (e.g. one Ray task per
    point) computes the points not saved yet, each as ``sweep_point`` does, instead of this loop.
    """

    points = sweep_points(scales, deadlines_ms, base_config.deadline_ms)
    if max_evaluations is not None:
        check_sweep_size(len(points), len(names) + len(learned), max_evaluations)
    key = {"names": list(names), "learned": sorted(learned), "groups": [g.name for g in groups],
           "episodes": episodes, "seed": seed, "env_config": base_config.to_dict(),
           "train": [f"{t.family}/{t.name}" for t in train_traces], "test": [f"{t.family}/{t.name}" for t in test_traces],
           "profile_frames": int(profile.n_frames)}
    done = _load_partial(partial, key, log)
    todo = [p for p in points if _point_id(p) not in done]
    precomputed = dict(zip(map(_point_id, todo), map_points(todo))) if map_points is not None and todo else {}
    entries: list[dict[str, Any]] = []
    points_out: list[dict[str, Any]] = []
    for k, point in enumerate(points):
        saved = done.get(_point_id(point))
        if saved is not None:
            point_entries, row = saved["entries"], {**saved["point"], "axes": list(point.axes)}
            for axis in point.axes:
                value = point.bandwidth_scale if axis == "bandwidth_scale" else point.deadline_ms
                entries += [{"axis": axis, "value": value, **e} for e in point_entries]
            points_out.append(row)
            log(f"point {k + 1}: bandwidth x{point.bandwidth_scale:g}, deadline {point.deadline_ms:g} ms: finished "
                f"by an earlier run of this sweep, reused from {partial}")
            continue
        pid = _point_id(point)
        point_entries, row = precomputed[pid] if pid in precomputed else sweep_point(
            profile, train_traces, test_traces, base_config, names, learned, groups, point, episodes, seed)
        for axis in point.axes:
            value = point.bandwidth_scale if axis == "bandwidth_scale" else point.deadline_ms
            entries += [{"axis": axis, "value": value, **e} for e in point_entries]
        seconds = row["seconds"]
        points_out.append(row)
        if partial is not None:
            done[_point_id(point)] = {"entries": point_entries, "point": row}
            _save_partial(Path(partial), key, done)
        log(f"point {k + 1}: bandwidth x{point.bandwidth_scale:g}, deadline {point.deadline_ms:g} ms "
            f"({', '.join(point.axes)}) in {seconds} s: " + ", ".join(
                f"{e['policy']} {e['accuracy']:.3f}" for e in point_entries))
    order = {a: i for i, a in enumerate(AXES)}
    entries.sort(key=lambda e: (order[e["axis"]], e["value"]))
    return {"entries": entries, "points": points_out, "notes": [RETUNE_NOTE],
            "axes": {"bandwidth_scale": sorted(scales), "deadline_ms": sorted(deadlines_ms)},
            "baseline": {"bandwidth_scale": 1.0, "deadline_ms": base_config.deadline_ms}}


def _point_id(point: SweepPoint) -> str:
    return f"{point.bandwidth_scale!r}/{point.deadline_ms!r}"


def _load_partial(partial: str | os.PathLike | None, key: dict[str, Any],
                  log: Callable[[str], None]) -> dict[str, Any]:
    """The finished points an earlier run of this very sweep saved in ``partial`` (none if absent or another sweep's)."""
    import json

    if partial is None or not Path(partial).is_file():
        return {}
    try:
        saved = json.loads(Path(partial).read_text())
        points = saved["points"] if saved["key"] == json.loads(json.dumps(key)) else None
    except (ValueError, KeyError, TypeError):
        log(f"{partial}: unreadable record of an earlier sweep; every point is computed again")
        return {}
    if points is None:
        log(f"{partial}: an earlier sweep with other settings; every point is computed again")
        return {}
    return dict(points)


def _save_partial(path: Path, key: dict[str, Any], done: dict[str, Any]) -> None:
    """Save the finished points (NaN kept as NaN: only this module reads the file back)."""
    import json

    from offload_common.files import record_files

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"key": key, "points": done}))
    record_files(path.parent, [path.name])


def _table(payload: dict[str, Any], axis: str, fmt: Callable[[dict[str, Any]], str]) -> list[str]:
    rows = [e for e in payload["entries"] if e["axis"] == axis]
    values = sorted({e["value"] for e in rows})
    policies = list(dict.fromkeys(e["policy"] for e in rows))
    cell = {(e["policy"], e["value"]): e for e in rows}
    unit = "x" if axis == "bandwidth_scale" else " ms"
    lines = ["| policy | " + " | ".join(f"{v:g}{unit}" for v in values) + " |", "|---|" + "---:|" * len(values)]
    for p in policies:
        lines.append(f"| {p} | " + " | ".join(fmt(cell[(p, v)]) if (p, v) in cell else "-" for v in values) + " |")
    return lines


def _fmt_acc(e: dict[str, Any]) -> str:
    lo, hi = e["accuracy_ci95"]
    ci = f" [{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) and math.isfinite(hi) else ""
    return f"{e['accuracy']:.3f}{ci}"


def _fmt_diff(v: dict[str, Any]) -> str:
    lo, hi = v["difference_ci95"]
    ci = f" [{lo:+.3f}, {hi:+.3f}]" if math.isfinite(lo) and math.isfinite(hi) else ""
    return f"{v['difference']:+.3f}{ci}"


def paired_table(payload: dict[str, Any], axis: str) -> list[str]:
    """Per learned policy (and seed group) and point of ``axis``: its paired difference to that point's best
    re-tuned reference [95% interval], the reference named in the first row; empty without learned policies."""
    rows = [e for e in payload["entries"] if e["axis"] == axis and "versus_best" in e]
    if not rows:
        return []
    values = sorted({e["value"] for e in rows})
    unit = "x" if axis == "bandwidth_scale" else " ms"
    ref = {e["value"]: e["versus_best"]["reference"] for e in rows}
    cell = {(e["policy"], e["value"]): e["versus_best"] for e in rows}
    lines = ["| minus the best re-tuned reference | " + " | ".join(f"{v:g}{unit}" for v in values) + " |",
             "|---|" + "---:|" * len(values),
             "| (best reference at the point) | " + " | ".join(ref.get(v, "-") for v in values) + " |"]
    for p in dict.fromkeys(e["policy"] for e in rows):
        lines.append(f"| {p} | " + " | ".join(_fmt_diff(cell[(p, v)]) if (p, v) in cell else "-" for v in values)
                     + " |")
    return lines


def sweep_markdown(payload: dict[str, Any], extra: dict[str, Any]) -> str:
    """sweep.md: per axis, accuracy [95% interval] and MB/frame of every policy at every point, and every learned
    policy's paired difference to the point's best re-tuned reference."""
    lines = ["# Sweep: accuracy against bandwidth and deadline", "",
             f"Held-out traces x held-out scenes, {extra.get('episodes_per_trace')} episode(s) per test trace, "
             f"{extra.get('test_traces')} test traces ({extra.get('traces')}). Accuracy: mean over episodes [95% "
             "bootstrap interval over episodes]; across-seed entries: mean over seeds [95% Student-t interval over "
             "seeds]. The other axis is held at its baseline (bandwidth x1, deadline "
             f"{payload['baseline']['deadline_ms']:g} ms).", "", f"**{RETUNE_NOTE}.**"]
    if payload.get("trained_at"):
        lines += ["", "Learned policies were trained at: " + "; ".join(
            f"{name}, {describe_training(c)}" for name, c in payload["trained_at"].items()) + "."]
    for axis in AXES:
        if not any(e["axis"] == axis for e in payload["entries"]):
            continue
        lines += ["", f"## Accuracy against {AXIS_LABELS[axis]}", "", *_table(payload, axis, _fmt_acc)]
        paired = paired_table(payload, axis)
        if paired:
            lines += ["", f"## Learned policies minus the best re-tuned reference, against {AXIS_LABELS[axis]}", "",
                      "Paired on the same episodes: mean difference [95% bootstrap interval over episodes]; a seed "
                      "group: mean of its seeds' differences [95% Student-t interval over seeds].", "", *paired]
        lines += ["", f"## MB per frame against {AXIS_LABELS[axis]}", "",
                  *_table(payload, axis, lambda e: f"{e['mb_per_frame']:.4f}")]
    lines += ["", "Seconds per point (tuning and evaluation): " + ", ".join(
        f"x{p['bandwidth_scale']:g}/{p['deadline_ms']:g} ms {p['seconds']}" for p in payload["points"])]
    return "\n".join(lines) + "\n"


def plot_sweep(payload: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per axis: accuracy (with its interval) and MB/frame against the axis, one line per policy
    (seed groups as their across-seed mean; their single seeds are left out to keep the figure readable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grouped = {p for e in payload["entries"] if e.get("kind") == "learned, across seeds" for p in e["policies"]}
    paths = []
    for axis in AXES:
        rows = [e for e in payload["entries"] if e["axis"] == axis]
        if not rows:
            continue
        fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(11, 4.2))
        policies = list(dict.fromkeys(e["policy"] for e in rows))
        for p in policies:
            pts = sorted((e for e in rows if e["policy"] == p), key=lambda e: e["value"])
            if p in grouped:
                continue
            x = np.array([e["value"] for e in pts])
            y = np.array([e["accuracy"] for e in pts])
            ci = np.array([[e["accuracy_ci95"][0] if e["accuracy_ci95"][0] is not None else np.nan,
                            e["accuracy_ci95"][1] if e["accuracy_ci95"][1] is not None else np.nan] for e in pts],
                          np.float64)
            style = "--" if p == "oracle" else "-"
            line, = ax_a.plot(x, y, style, marker="o", ms=4, lw=1.3, label=p)
            ok = np.isfinite(ci).all(1)
            if ok.any():  # accuracy lies in [0, 1]; a t-interval over 2 seeds can reach past it
                ax_a.fill_between(x[ok], np.clip(ci[ok, 0], 0, 1), np.clip(ci[ok, 1], 0, 1), color=line.get_color(),
                                  alpha=0.15, lw=0)
            ax_b.plot(x, [e["mb_per_frame"] for e in pts], style, marker="o", ms=4, lw=1.3, label=p,
                      color=line.get_color())
        for ax in (ax_a, ax_b):
            ax.set_xlabel(AXIS_LABELS[axis])
            if axis == "bandwidth_scale":
                ax.set_xscale("log", base=2)
            values = sorted({e["value"] for e in rows})
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
        ax_a.set_ylabel("accuracy (95% interval shaded)")
        ax_a.set_ylim(max(0.0, ax_a.get_ylim()[0]), min(1.0, ax_a.get_ylim()[1]))
        ax_b.set_ylabel("MB per frame sent")
        ax_a.legend(fontsize=7, ncol=2)
        ax_a.set_title(f"accuracy vs {axis.replace('_', ' ')} (heuristics re-tuned per point)", fontsize=9)
        ax_b.set_title(f"bytes per frame vs {axis.replace('_', ' ')}", fontsize=9)
        fig.tight_layout()
        name = f"sweep_{axis}.png"
        with atomic_path(out_dir / name) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        paths.append(out_dir / name)
    return paths


def write_sweep(payload: dict[str, Any], out_dir: str | os.PathLike, extra: dict[str, Any]) -> None:
    """Write sweep.json (payload plus ``extra`` under ``run``), sweep.md and the PNGs as one set: built in a
    temporary folder, then swapped in whole (a folder holding only a sweep) or file by file (a folder holding
    more, whose other files are left alone)."""
    with staged_files(out_dir, lambda p: p.name in SWEEP_FILES) as build:
        write_json(build / "sweep.json", {**payload, "run": extra})
        atomic_write_text(build / "sweep.md", sweep_markdown(payload, extra))
        plot_sweep(payload, build)
