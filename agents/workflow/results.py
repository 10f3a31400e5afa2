"""The results behind the README: recorded JSON in ``results/`` and the README blocks rendered from it.

Every number the README states comes from a file in ``results/`` that holds it together with the command and the
code version (commit, and whether the tree had uncommitted changes) that produced it. ``record`` copies a job's
output (a report folder, a sweep folder, or any JSON a command wrote) into ``results/<name>.json``; ``render_readme``
rewrites every block of README.md between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` from those
files; ``check_readme`` says which blocks differ from their render (``train_agent.py results --check``, run by the
default test suite), so a change that moves a number cannot leave the README behind.

A block's text is written by its renderer below, prose included: the wording follows the numbers (a difference
whose interval includes zero is called "not significant", a loss a loss).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offload_common.files import read_json, write_json

from .record import code_version

FORMAT = 1
BLOCK = re.compile(r"(<!-- results:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


class ResultsError(ValueError):
    """A results file or README block is missing or malformed (the message names it and says what to run)."""


def _strip_episodes(value: Any) -> Any:
    """A report without its per-episode arrays (the intervals computed from them stay)."""
    if isinstance(value, dict):
        return {k: _strip_episodes(v) for k, v in value.items() if k != "episode_accuracy"}
    return value


def collect(source: Path) -> dict[str, Any]:
    """What ``record`` keeps of a job's output: a report folder (report.json + report_meta.json), a sweep folder
    (sweep.json), a folder holding one JSON file, or a JSON file."""
    source = Path(source)
    if source.is_dir() and (source / "report.json").is_file():
        meta = read_json(source / "report_meta.json", "report metadata")
        return {"kind": "report", "report": _strip_episodes(read_json(source / "report.json", "report")),
                "meta": _strip_episodes(meta), "command": meta.get("run", {}).get("command"),
                "code": meta.get("run", {}).get("code")}
    if source.is_dir() and (source / "sweep.json").is_file():
        sweep = read_json(source / "sweep.json", "sweep")
        return {"kind": "sweep", "sweep": sweep, "command": sweep.get("run", {}).get("command"),
                "code": sweep.get("run", {}).get("code")}
    if source.is_dir():
        found = sorted(source.glob("*.json"))
        if len(found) != 1:
            raise ResultsError(f"{source}: expected a report folder (report.json), a sweep folder (sweep.json) or a "
                               f"folder with one JSON file, found {len(found)} JSON files")
        source = found[0]
    if not source.is_file():
        raise ResultsError(f"{source}: no such report folder or JSON file")
    payload = read_json(source, "result")
    if not isinstance(payload, dict):
        raise ResultsError(f"{source}: expected a JSON object")
    command = payload.get("command")
    code = payload.get("code") or ({"commit": payload["git_commit"]} if payload.get("git_commit") else None)
    return {"kind": "json", "data": payload, "command": command if isinstance(command, list) else None, "code": code}


def record(name: str, source: Path, results_dir: Path, command: list[str] | None = None) -> Path:
    """Write ``results_dir/<name>.json`` from ``source`` with the command that produced it and the code version it
    ran on (both from the job's own record when it has them; else ``command`` and the code that runs now)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ResultsError(f"results name {name!r}: expected lower-case letters, digits and dashes")
    payload = collect(source)
    payload["command"] = command or payload.get("command")
    if not payload["command"]:
        raise ResultsError(f"{source}: the job recorded no command line; pass the command that produced it")
    payload["code"] = payload.get("code") or code_version()
    out = {"format": FORMAT, "name": name, "source": str(source), "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           **payload}
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    write_json(path, out)
    return path


def load(results_dir: Path, name: str) -> dict[str, Any]:
    path = results_dir / f"{name}.json"
    if not path.is_file():
        raise ResultsError(f"{path}: missing; produce it with the command in README's 'Reproducing the results', "
                           f"then `train_agent.py results --record {name} OUTPUT`")
    payload = read_json(path, "results file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ResultsError(f"{path}: not a results file of format {FORMAT}")
    return payload


# ---- formatting -----------------------------------------------------------------------------------------------------

def _ci(lo: float, hi: float, sign: bool = False) -> str:
    f = "{:+.3f}" if sign else "{:.3f}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def _acc(m: dict[str, Any]) -> str:
    return f"{m['accuracy']:.3f} {_ci(*m['accuracy_ci95'])}"


def _diff(e: dict[str, Any]) -> str:
    return f"{e['difference']:+.3f} {_ci(*e['difference_ci95'], sign=True)}"


def _verdict(e: dict[str, Any]) -> str:
    lo, hi = e["difference_ci95"]
    if lo > 0:
        return "a significant win"
    if hi < 0:
        return "a significant loss"
    return "**not** significant"


def _minutes(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def _mix(mix: dict[str, float]) -> str:
    """The action mix in words: actions of >= 10% by share, offload@<r> shares summed as 'offloads'."""
    parts: dict[str, float] = {}
    for action, share in mix.items():
        key = "offloads" if action.startswith("offload@") else action
        parts[key] = parts.get(key, 0.0) + share
    big = sorted(((v, k) for k, v in parts.items() if v >= 0.095), reverse=True)
    return ", ".join(f"{v:.0%} {k}" for v, k in big) or "mixed"


# ---- blocks ---------------------------------------------------------------------------------------------------------

def _families(report: dict[str, Any]) -> list[str]:
    first = next(iter(report.values()))
    return [f for f in first if f != "all"] + ["all"]


TARGET = 0.030  # issue 23: a learned policy's margin over the best fair reference


def block_main_table(results_dir: Path, name: str = "main", job: str = "the main job") -> str:
    """A report's comparison table (the main job's, or any recorded report's): every deployable policy and the
    references, per family, MB/frame, mix."""
    main = load(results_dir, name)
    report, meta = main["report"], main["meta"]
    fams = _families(report)
    references = set(meta.get("references", ["oracle", "link-oracle"]))
    best = {}
    for fam in fams:
        cands = {n: r[fam]["accuracy"] for n, r in report.items() if fam in r and n not in references
                 and "episodes" in r[fam] and "(" not in n}
        best[fam] = max(cands, key=cands.get)
    n_traces = meta["run"].get("test_traces")
    head = "| policy | " + " | ".join(f"{f} ({report[next(iter(report))][f]['episodes']} episodes)" for f in fams)
    lines = [head + " | MB/frame | action mix |", "|---|" + "---:|" * (len(fams) + 1) + "---|"]
    for name, r in report.items():
        if "(" in name:  # across-seed entries are in the seeds block
            continue
        cells = [f"**{_acc(r[f])}**" if best[f] == name else _acc(r[f]) for f in fams if f in r]
        label = f"{name} (reference, not deployable)" if name in references else name
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {r['all']['mb_per_frame']:.4f} | "
                     f"{_mix(r['all']['action_mix'])} |")
    run = meta["run"]
    lines += ["", f"{n_traces} held-out traces x held-out scenes, {run.get('episodes_per_trace')} episodes of "
              f"{run.get('env_config', {}).get('episode_frames', 300)} frames per test trace; mean accuracy [95% "
              f"bootstrap interval]; best deployable policy per column in bold. Recorded from `{' '.join(main['command'])}`"
              f" at commit `{(main['code'].get('commit') or 'unknown')[:10]}`"
              f"{' (with uncommitted changes)' if main['code'].get('dirty') else ''}; {job} took "
              f"{_minutes(run.get('total_seconds', 0))} on this project's 2-core machine."]
    return "\n".join(lines)


def _learned(report: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """The learned policies of a report (their description names the framework they were trained with)."""
    policies = meta.get("policies", {})
    return [n for n in report if isinstance(policies.get(n), dict) and "framework" in policies[n]]


def block_main_claim(results_dir: Path, name: str = "main") -> str:
    """The claim: each learned policy against the best reference, paired, per family, in words, and whether it
    reaches issue 23's target margin."""
    main = load(results_dir, name)
    report, meta = main["report"], main["meta"]
    best = meta["best_heuristic"]
    paired = meta["paired_vs_best_heuristic"]
    oracle_gap = report.get("oracle", {}).get("all", {}).get("accuracy")
    out = []
    for pol in _learned(report, meta):
        fams = _families(report)
        per_family = "; ".join(f"{f} {_diff(paired[pol][f])} ({_verdict(paired[pol][f])})" for f in fams if f != "all")
        e = paired[pol]["all"]
        gap = ""
        if oracle_gap is not None and "gap_closed" in e:
            gap = f", {e['gap_closed']:.0%} of the {best}-to-oracle gap"
        target = "met" if e["difference"] >= TARGET else "**not met**"
        out.append(f"Paired on the same episodes against the best tuned reference ({best}, {_acc(report[best]['all'])}"
                   f"), {pol} ({_acc(report[pol]['all'])}) differs by {_diff(e)} overall ({_verdict(e)}{gap}); per "
                   f"family: {per_family}. The target margin of {TARGET:+.3f} overall is {target}.")
    return "\n\n".join(out) if out else f"No learned policy in the {name} report."


def block_seeds(results_dir: Path) -> str:
    """The main job over several training seeds (``run --seeds``): per family, each seed's paired difference to the
    best tuned reference and the across-seed mean with its Student-t interval."""
    rec = load(results_dir, "seeds")
    meta = rec["meta"]
    lines = []
    for name, fams in meta["across_seeds"].items():
        first = next(iter(fams.values()))
        ref = first.get("vs_best_heuristic", {}).get("reference")
        lines += [f"| family | {name} accuracy, mean [t-interval] | minus {ref}, mean [t-interval] | per seed "
                  f"({', '.join(map(str, first['seeds']))}) |", "|---|---:|---:|---|"]
        for fam, e in fams.items():
            v = e["vs_best_heuristic"]
            lo, hi = v["difference_ci95"]
            lines.append(f"| {fam} | {e['accuracy']:.3f} [{e['accuracy_ci95'][0]:.3f}, {e['accuracy_ci95'][1]:.3f}] | "
                         f"{v['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
                         + ", ".join(f"{p['difference']:+.3f}" for p in v["per_seed"]) + " |")
        e = fams["all"]["vs_best_heuristic"]
        above = e["difference_ci95"][0] > 0
        verdict = "a win across seeds" if above else "**not** a win across seeds"
        lines += ["", f"Over the {len(first['seeds'])} training seeds the learned policy differs from {ref} by "
                  f"{e['difference']:+.3f} overall, its across-seed interval "
                  f"{'above 0' if above else 'including 0'} ({verdict}); every seed was evaluated on the main "
                  f"job's held-out episodes. Recorded from `{' '.join(rec['command'] or [])}` at commit "
                  f"`{((rec.get('code') or {}).get('commit') or 'unknown')[:10]}`."]
    return "\n".join(lines)


def block_profile(results_dir: Path) -> str:
    """The committed frame profile's numbers (``python -m perception summary --json``)."""
    p = load(results_dir, "profile")["data"]
    acc, d, sc = p["accuracy"], p["distilled"], p["scene_s"]
    servers = [f"server@{r}" for r in p["resolutions"]]
    rem = d["remote"]
    s_auc, m_auc = d["auroc_student_right"], d["auroc_maxprob_student_right"]
    rank = "better" if s_auc > m_auc else "a little *worse*" if s_auc < m_auc else "exactly as well"
    beats = all(rem[k]["brier"] < rem[k]["brier_unconditional"] for k in (*servers, "teacher"))
    return (f"The default profile: {p['frames']:,} frames of {p['scenes']:,} scenes at {p['fps']:g} fps, median scene "
            f"{p['median_scene_s']:.2f} s (p10 {sc['p10']:.1f} s, p90 {sc['p90']:.1f} s, {sc['min']:.1f} to "
            f"{sc['max']:.1f} s). Accuracy on evaluation frames: int8 student {acc['student_int8']:.3f}, server "
            + " / ".join(f"{acc[k]:.3f}" for k in servers) + f" at {' / '.join(map(str, p['resolutions']))} px, "
            f"teacher {acc['teacher']:.3f}; temperature {p['temperature']:.2f} takes the student's ECE from "
            f"{p['ece_before']:.3f} to {p['ece_after']:.3f}. On the {d['test_frames']:,} frames of test scenes, the "
            f"distilled P(student right) ranks the student's answers {rank} than the calibrated max probability "
            f"(AUROC {s_auc:.3f} vs {m_auc:.3f}, Brier {d['brier_student_right']:.3f} vs "
            f"{d['brier_maxprob_student_right']:.3f}), while the distilled P(server right) "
            f"{'beats' if beats else 'does not always beat'} the unconditional accuracy (AUROC "
            + " / ".join(f"{rem[k]['auroc']:.2f}" for k in servers) + ", Brier "
            + " / ".join(f"{rem[k]['brier']:.3f}" for k in servers) + " vs "
            + " / ".join(f"{rem[k]['brier_unconditional']:.3f}" for k in servers)
            + f"; teacher {rem['teacher']['brier']:.3f} vs {rem['teacher']['brier_unconditional']:.3f}).")


def block_temporal(results_dir: Path) -> str:
    """Synthetic scenes vs real video through the same student and projection (``python -m perception temporal``)."""
    data = load(results_dir, "temporal")["data"]
    rows, fps = data["rows"], data["fps"]
    dists = sorted(int(d) for d in next(iter(rows.values()))["cos_mean_by_distance"])
    lines = ["| stream | frames | P(top-1 unchanged) | cos p5 | cos p50 | "
             + " | ".join(f"mean cos {d / fps:.2f} s apart" for d in dists) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(dists)]
    for name, r in rows.items():
        q = r["cos_consecutive_quantiles"]
        lines.append(f"| {name} | {r['frames']:,} | {r['p_top1_unchanged']:.3f} | {q['0.05']:.3f} | {q['0.5']:.3f} | "
                     + " | ".join(f"{r['cos_mean_by_distance'][str(d)]:.3f}" for d in dists) + " |")
    synth = [r for n, r in rows.items() if not n.startswith("real")]
    real = [r for n, r in rows.items() if n.startswith("real")]
    if synth and real:
        lo = min(r["p_top1_unchanged"] for r in real)
        hi = max(r["p_top1_unchanged"] for r in real)
        inside = all(min(r["cos_mean_by_distance"][str(d)] for r in real) <= synth[0]["cos_mean_by_distance"][str(d)]
                     <= max(r["cos_mean_by_distance"][str(d)] for r in real) for d in dists)
        lines += ["", f"The synthetic scenes' embedding similarity sits {'inside' if inside else 'partly outside'} the "
                  f"range of the real videos at every distance; the student's top-1 is "
                  f"{'steadier' if synth[0]['p_top1_unchanged'] > hi else 'about as steady'} on them "
                  f"({synth[0]['p_top1_unchanged']:.2f} vs {lo:.2f} to {hi:.2f} on the real videos)."]
    return "\n".join(lines)


def _measured(rec: dict[str, Any]) -> str:
    """Where a recorded benchmark came from: its command and commit (benchmarks state their machine's load)."""
    code = rec.get("code") or {}
    return (f"`{' '.join(rec['command'])}` at commit `{(code.get('commit') or 'unknown')[:10]}`"
            f"{' (with uncommitted changes)' if code.get('dirty') else ''}")


def block_device_latency(results_dir: Path) -> str:
    """Per-frame device time of the deployed policy (``benchmarks/device_latency.py``)."""
    rec = load(results_dir, "device-latency")
    d = rec["data"]
    lines = [f"| part | median ms | p99 ms | median / {d['period_ms']:.1f} ms frame period |", "|---|---:|---:|---:|"]
    for r in d["results"]:
        lines.append(f"| {r['part']} | {r['median_ms']:.2f} | {r['p99_ms']:.2f} | {r['median_ms'] / d['period_ms']:.0%} |")
    total = next(r for r in d["results"] if r["part"] == "total")
    verdict = "meets" if total["median_ms"] <= d["goal_ms"] else "misses"
    p99 = "meets" if total["p99_ms"] <= d["goal_ms"] else "misses"
    lines += ["", f"{d['frames']} frames ({d['frame_source']}), one core, ONNX Runtime on {d['threads']} thread(s), "
              f"load average {d.get('load_average_1min', float('nan')):.1f} when measured. The median {verdict} the goal "
              f"of a third of the frame period ({d['goal_ms']:.1f} ms) and the p99 {p99} it. Measured by "
              f"{_measured(rec)}."]
    return "\n".join(lines)


def block_temporal_confidence(results_dir: Path) -> str:
    """How well each scorer ranks the student's answers on test scenes, with and without the scene's history
    (``benchmarks/temporal_confidence.py``), and whether any head beats the calibrated max probability."""
    rec = load(results_dir, "temporal-confidence")
    d = rec["data"]
    lines = [f"| P(student right) on {d['test_frames']:,} test-scene frames | AUROC (mean over head seeds) | per seed "
             "| Brier (mean) |", "|---|---:|---|---:|"]
    for r in d["rows"]:
        brier = f"{sum(r['brier']) / len(r['brier']):.3f}" if r["brier"] else "-"
        lines.append(f"| {r['scorer']} | {sum(r['auroc']) / len(r['auroc']):.3f} | " + ", ".join(f"{a:.3f}" for a in r["auroc"])
                     + f" | {brier} |")
    maxprob = sum(d["rows"][0]["auroc"]) / len(d["rows"][0]["auroc"])
    heads = [r for r in d["rows"] if r["scorer"].startswith("distilled head")]
    above = [r["scorer"].removeprefix("distilled head: ") for r in heads if min(r["auroc"]) > maxprob]
    verdict = (f"Above the calibrated max probability with every head seed: {', '.join(above)}." if above else
               "No head is above the calibrated max probability with every head seed.")
    lines += ["", f"{verdict} Heads fitted on {d['train_frames']:,} training-scene frames, with the profile's head "
              f"settings; the history is the {d['window']} frames before each frame in its scene. Measured by "
              f"{_measured(rec)}."]
    return "\n".join(lines)


def block_live_parity(results_dir: Path, name: str = "live-parity") -> str:
    """Sim vs live on several held-out traces (``benchmarks/live_parity.py``), and the issue's goals."""
    rec = load(results_dir, name)
    d = rec["data"]
    rows = d["rows"]
    lines = ["| trace | live acc | sim acc | live MB/frame | sim MB/frame | live p50 ms | sim p50 ms | action agreement "
             "| live / sim miss rate | fps | faults |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        faults = ", ".join(f"{k} {v}" for k, v in r["faults"].items()) or "none"
        lines.append(f"| {r['family']}/{r['trace'][-28:]} | {r['live_accuracy']:.3f} | {r['sim_accuracy']:.3f} | "
                     f"{r['live_mb_per_frame']:.4f} | {r['sim_mb_per_frame']:.4f} | {r['live_latency_p50']:.1f} | "
                     f"{r['sim_latency_p50']:.1f} | {r['action_agreement']:.2f} | {r['live_miss_rate']:.2f} / "
                     f"{r['sim_miss_rate']:.2f} | {r['fps_achieved']:.1f} | {faults} |")
    n = len(rows)
    per = [r["live_accuracy"] - r["sim_accuracy"] for r in rows]
    gap = sum(per) / n
    agree = sum(r["action_agreement"] for r in rows) / n
    lat = [abs(r["live_latency_p50"] - r["sim_latency_p50"]) / r["sim_latency_p50"] for r in rows]
    a = d["args"]
    dilation = sorted({round(float(r.get("slowdown", a["slowdown"])), 2) for r in rows})
    goals = [("accuracy within 1 point on average", abs(gap) <= 0.01), ("action agreement >= 95%", agree >= 0.95),
             ("median latency error <= 10%", max(lat) <= 0.10)]
    said = "; ".join(f"{g} {'met' if ok else '**not met**'}" for g, ok in goals)
    lines += ["", f"{n} held-out traces x {float(a['seconds']):g} s, policy {a['policy']}, time dilation "
              f"{', '.join(f'{k:g}' for k in dilation)}x. Live minus sim accuracy averages {gap:+.3f} "
              f"({min(per):+.3f} to {max(per):+.3f} per trace); action agreement averages {agree:.2f}; the median "
              f"latency differs by {min(lat):.0%} to {max(lat):.0%}. The issue's goals: {said}. Measured by "
              f"{_measured(rec)}."]

    def med(values: list[float]) -> float:
        values = sorted(values)
        return values[len(values) // 2]

    machines = [r["machine"] for r in rows if r.get("machine")]
    if machines:
        spread = (f" (the medians of 15 batches over 20 s ranged {machines[0]['student_ms_range'][0]:.2f} to "
                  f"{machines[0]['student_ms_range'][1]:.2f} ms: this shared machine's speed drifts)"
                  if "student_ms_range" in machines[0] else "")
        lines += ["", f"Time dilation: the int8 student took {med([m['student_ms_here'] for m in machines]):.2f} ms on "
                  f"this machine{spread} against the profile's {machines[0]['student_ms_profile']:.2f} ms. In emulated time the "
                  f"device loop took {med([r['decide_ms_p50'] for r in rows if 'decide_ms_p50' in r]):.1f} ms per frame "
                  f"from capture to decision (median over the traces; the env assumes "
                  f"{rows[0].get('env_decision_ms', float('nan')):.1f} ms)."]
    timing = [r["answer_timing"] for r in rows if r.get("answer_timing", {}).get("answers")]
    if timing:
        lines += ["", "Where an answer's time went (median over the traces of each trace's median): the server's own "
                  f"time {med([t['server_ms_p50'] for t in timing]):.1f} ms (model call "
                  f"{med([t['inference_ms_p50'] for t in timing]):.1f} ms) against the env's "
                  f"{med([t['modelled_ms_p50'] for t in timing]):.1f} ms (profile compute + request overhead), "
                  f"{med([t['outside_server_ms_p50'] for t in timing]):.1f} ms outside the server beyond upload and round "
                  f"trip (the env's request_ms: {rows[0].get('env_request_ms', float('nan')):.1f} ms); answers arrive "
                  f"{med([t['late_vs_model_ms_p50'] for t in timing]):+.1f} ms against the env's model."]
    return "\n".join(lines)


def block_ablation(results_dir: Path, name: str = "ablation") -> str:
    """Training variants measured against the tuned references (``benchmarks/rl_ablation.py``): per candidate,
    validation and held-out accuracy and each seed's held-out difference to the best reference there."""
    rec = load(results_dir, name)
    d = rec["data"]
    best = d.get("best_reference_on_test", "cachenet")
    lines = ["| method | steps | seeds | wall s per run | best validation (mean) | validation minus the best reference, "
             f"per seed | held-out, {d.get('test_episodes_per_trace', 2)} episodes/trace (mean) | held-out minus "
             f"{best}, per seed |", "|---|---:|---:|---:|---:|---|---:|---|"]
    for cand, e in d["summary"].items():
        val = ", ".join(f"{v:+.3f}" for v in e.get("val_minus_best_reference_per_seed", [])) or "-"
        lines.append(f"| {cand} | {d['timesteps']:,} | {len(e['seeds'])} | {e['wall_s_mean']:.0f} | "
                     f"{e['best_val_accuracy_mean']:.3f} | {val} | {e['test_accuracy_mean']:.3f} | "
                     + ", ".join(f"{v:+.3f}" for v in e[f"test_minus_{best}_per_seed"]) + " |")
    refs = ", ".join(f"{n} {v['all']:.3f}" for n, v in d["references_test"].items())
    budget = (f"{d['timesteps']:,} steps per run" if d["timesteps"] >= 600_000 else
              f"a reduced budget ({d['timesteps']:,} steps, not the main job's 600,000), so it ranks candidates and "
              "is no headline")
    at = float(d.get("bandwidth_scale", 1.0))  # the whole ablation at this throughput scale (one sweep point)
    scales = ", ".join(f"{v * at:g}" for v in d.get("train_bandwidth_scales", [1.0]))
    lines += ["", f"References on the same held-out episodes: {refs}. Validation: each run's own validation traces, "
              "the references scored on the same episodes, the best reference per seed; the best validation is "
              f"picked over the run's evaluations, so it is optimistic. Every run trained and validated at bandwidth "
              f"x{scales}; held out at x{at:g}"
              + (" (the references tuned there on the training side, as at a sweep point)." if at != 1.0 else ".")
              + (" Every policy, the references included (tuned again on it), observed the student's recent history "
                 "as well (the temporal observation fields)." if d.get("temporal_observation") else "")
              + f" Measured by {_measured(rec)}, {budget}."]
    return "\n".join(lines)


def _trained_at(sw: dict[str, Any], shown: str) -> str:
    """Where the sweep's learned policy ``shown`` (a run, or a seed group: its first run) was trained; a sweep
    recorded before ``trained_at`` existed compared runs trained at x1 and the baseline deadline."""
    from agents.evaluation import describe_training

    trained = sw.get("trained_at") or {}
    members = next((e["policies"] for e in sw["entries"] if e["policy"] == shown and "policies" in e), [shown])
    conditions = trained.get(members[0], {"bandwidth_scales": [1.0], "deadline_ms": sw["baseline"]["deadline_ms"]})
    return describe_training(conditions)


def sweep_verdict(sw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per learned entry shown in the sweep block (seed groups when there are any): at how many points it is at
    or above the best re-tuned reference, its interval above / below 0, and its worst point."""
    entries = [e for e in sw["entries"] if "versus_best" in e]
    shown = [e for e in entries if e["kind"] == "learned, across seeds"] or entries
    out: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, float, float]] = set()
    for e in shown:
        key = (e["policy"], e["bandwidth_scale"], e["deadline_ms"])
        if key in seen:  # the point shared by both axes is listed under each
            continue
        seen.add(key)
        v = e["versus_best"]
        o = out.setdefault(e["policy"], {"points": 0, "at_or_above": 0, "above": 0, "below": 0, "worst": None})
        o["points"] += 1
        o["at_or_above"] += v["difference"] >= 0
        o["above"] += v["difference_ci95"][0] > 0
        o["below"] += v["difference_ci95"][1] < 0
        if o["worst"] is None or v["difference"] < o["worst"]["difference"]:
            o["worst"] = {"bandwidth_scale": e["bandwidth_scale"], "deadline_ms": e["deadline_ms"],
                          "reference": v["reference"], "difference": v["difference"],
                          "difference_ci95": v["difference_ci95"]}
    return out


# the trainings the training-conditions block sets side by side: (seeds record, sweep record of those runs)
TRAINING_CONDITIONS = (("seeds-x1", "sweep-x1"), ("seeds", "sweep"), ("seeds-deadlines", "sweep-deadlines"),
                       ("seeds-curriculum", "sweep-curriculum"), ("seeds-teacher-per-speed", "sweep-teacher-per-speed"))


def block_training_speeds(results_dir: Path) -> str:
    """The main job's three seeds trained at x1 only, over a mixture of speeds, over that mixture and several
    deadlines, and over the mixture with other training rules (``TRAINING_CONDITIONS``): the held-out difference
    to the best tuned reference at x1 and 200 ms (their seeds records) and the sweep's verdict (their sweep
    records)."""
    lines = ["| trained at | training s per run (mean) | held-out at x1 and 200 ms: minus the best tuned reference, mean "
             "[t-interval over seeds] | per seed | sweep points at or above the best re-tuned reference | intervals "
             "above / below 0 | worst point |", "|---|---:|---:|---|---:|---:|---|"]
    for seeds_name, sweep_name in TRAINING_CONDITIONS:
        seeds, sweep = load(results_dir, seeds_name), load(results_dir, sweep_name)
        across = seeds["meta"]["across_seeds"]
        group = next(iter(across))
        v = across[group]["all"]["vs_best_heuristic"]
        lo, hi = v["difference_ci95"]
        verdict = sweep_verdict(sweep["sweep"])[group]
        w = verdict["worst"]
        wlo, whi = w["difference_ci95"]
        runs = seeds["meta"]["run"].get("runs", {}).values()
        train_s = sum(r["train_seconds"] for r in runs) / len(runs) if runs else float("nan")
        lines.append(f"| {_trained_at(sweep['sweep'], group)} | {train_s:.0f} | {v['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] against "
                     f"{v['reference']} | " + ", ".join(f"{p['difference']:+.3f}" for p in v["per_seed"])
                     + f" | {verdict['at_or_above']} of {verdict['points']} | {verdict['above']} / {verdict['below']} "
                     f"| x{w['bandwidth_scale']:g}, {w['deadline_ms']:g} ms: {w['difference']:+.3f} [{wlo:+.3f}, "
                     f"{whi:+.3f}] against {w['reference']} |")
    lines += ["", "Each row: the 3 training seeds of `run --seeds 0,1,2` (" + "; ".join(
        f"`{n}.json` from `{' '.join(load(results_dir, n)['command'] or [])}` at commit "
        f"`{((load(results_dir, n).get('code') or {}).get('commit') or 'unknown')[:10]}`"
        for n, _ in TRAINING_CONDITIONS) + "), and the sweep of those runs (" + ", ".join(
        f"`{sweep_name}.json`" for _, sweep_name in TRAINING_CONDITIONS) + ")."]
    cross = []
    for name, trained in (("fcc-to-norway-x1", "at x1"), ("fcc-to-norway", "over the mixture")):
        meta = load(results_dir, name)["meta"]
        learned = next(n for n, p in meta["policies"].items() if "framework" in p)
        cross.append(f"trained {trained}, {learned} minus {meta['best_heuristic']} "
                     f"{_diff(meta['paired_vs_best_heuristic'][learned]['all'])}")
    lines += ["", "FCC -> Norway (one training seed, `fcc-to-norway-x1.json` and `fcc-to-norway.json`): "
              + "; ".join(cross) + "."]
    return "\n".join(lines)


def block_sweep(results_dir: Path, name: str = "sweep") -> str:
    """The sweep (``train_agent.py sweep``): per point, the best re-tuned reference and each learned policy (seed
    groups as the mean over seeds) paired against it, and at how many points the learned policy is at or above it."""
    rec = load(results_dir, name)
    sw = rec["sweep"]
    entries = [e for e in sw["entries"] if "versus_best" in e]
    groups = [e for e in entries if e["kind"] == "learned, across seeds"]
    shown = groups or entries
    points: dict[tuple[float, float], dict[str, Any]] = {}
    on_bandwidth_axis = set()
    for e in sw["entries"]:
        points.setdefault((e["bandwidth_scale"], e["deadline_ms"]), {})[e["policy"]] = e
        if e.get("axis") == "bandwidth_scale":
            on_bandwidth_axis.add((e["bandwidth_scale"], e["deadline_ms"]))
    names = list(dict.fromkeys(e["policy"] for e in shown))
    lines = ["| bandwidth x | deadline ms | best re-tuned reference | " + " | ".join(
        f"{n}, minus the reference" for n in names) + " |", "|---:|---:|---|" + "---:|" * len(names)]
    # the bandwidth axis first (by scale), then the deadline axis (by deadline); the shared point once, with the first
    for (scale, deadline), pols in sorted(points.items(), key=lambda kv: (kv[0] not in on_bandwidth_axis, kv[0][0],
                                                                           kv[0][1])):
        cells = []
        ref = None
        for n in names:
            v = pols[n]["versus_best"]
            ref = v["reference"]
            lo, hi = v["difference_ci95"]
            per_seed = (" (" + ", ".join(f"{d:+.3f}" for d in v["difference_per_seed"]) + ")"
                        if "difference_per_seed" in v else "")
            cells.append(f"{v['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]{per_seed}")
        lines.append(f"| {scale:g} | {deadline:g} | {ref} ({pols[ref]['accuracy']:.3f}) | " + " | ".join(cells) + " |")
    run = sw.get("run", {})
    interval = ("mean over seeds [95% Student-t interval over seeds] (per seed)" if groups
                else "paired mean [95% bootstrap interval over episodes]")
    lines += ["", f"{len(points)} points, {run.get('test_traces')} held-out traces x held-out scenes, "
              f"{run.get('episodes_per_trace')} episodes per test trace at every point; the difference is the "
              f"{interval} to the best tuned reference at that point, which was re-tuned there (learned-greedy "
              f"refitted too); the learned policy is the one trained at {_trained_at(sw, names[0])}, used as "
              "trained."]
    for n, o in sweep_verdict(sw).items():
        lines.append("")
        lines.append(f"{n} is at or above the best re-tuned reference at {o['at_or_above']} of {o['points']} points "
                     f"(its interval above 0 at {o['above']}, below 0 at {o['below']}); the target of >= 0 at every "
                     f"point is {'met' if o['at_or_above'] == o['points'] else '**not met**'}.")
    lines += ["", f"Recorded from `{' '.join(rec['command'] or [])}` at commit "
              f"`{((rec.get('code') or {}).get('commit') or 'unknown')[:10]}`"
              f"{' (with uncommitted changes)' if (rec.get('code') or {}).get('dirty') else ''}; it took "
              f"{_minutes(run.get('total_seconds', 0))}."]
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[Path], str]] = {
    "ablation": block_ablation,
    "ablation-hp": lambda d: block_ablation(d, "ablation-hp"),
    "ablation-mixed": lambda d: block_ablation(d, "ablation-mixed"),
    "ablation-gamma": lambda d: block_ablation(d, "ablation-gamma"),
    "ablation-temporal": lambda d: block_ablation(d, "ablation-temporal"),
    "ablation-x4": lambda d: block_ablation(d, "ablation-x4"),
    "ablation-mask": lambda d: block_ablation(d, "ablation-mask"),
    "ablation-residual": lambda d: block_ablation(d, "ablation-residual"),
    "ablation-long": lambda d: block_ablation(d, "ablation-long"),
    "ablation-val": lambda d: block_ablation(d, "ablation-val"),
    "ablation-net": lambda d: block_ablation(d, "ablation-net"),
    "ablation-recurrent": lambda d: block_ablation(d, "ablation-recurrent"),
    "device-latency": block_device_latency,
    "live-parity": block_live_parity,
    "live-parity-cachenet": lambda d: block_live_parity(d, "live-parity-cachenet"),
    "temporal": block_temporal,
    "temporal-confidence": block_temporal_confidence,
    "main-table": block_main_table,
    "main-claim": block_main_claim,
    "profile": block_profile,
    "seeds": block_seeds,
    "sweep": block_sweep,
    "sweep-deadlines": lambda d: block_sweep(d, "sweep-deadlines"),
    "sweep-curriculum": lambda d: block_sweep(d, "sweep-curriculum"),
    "sweep-teacher-per-speed": lambda d: block_sweep(d, "sweep-teacher-per-speed"),
    "training-speeds": block_training_speeds,
    "fcc-to-norway-table": lambda d: block_main_table(d, "fcc-to-norway", "the evaluation"),
    "fcc-to-norway-claim": lambda d: block_main_claim(d, "fcc-to-norway"),
}


def render_readme(text: str, results_dir: Path, blocks: dict[str, Callable[[Path], str]] | None = None) -> str:
    """README text with every results block re-rendered; an unknown block name is an error naming it."""
    blocks = BLOCKS if blocks is None else blocks
    names = [m.group("name") for m in BLOCK.finditer(text)]
    unknown = sorted(set(names) - set(blocks))
    if unknown:
        raise ResultsError(f"README.md: results blocks {unknown} have no renderer; known: {sorted(blocks)}")

    def sub(m: re.Match[str]) -> str:
        return m.group(1) + blocks[m.group("name")](results_dir).rstrip("\n") + "\n" + m.group(4)

    return BLOCK.sub(sub, text)


def check_readme(readme: Path, results_dir: Path) -> list[str]:
    """The names of README blocks that differ from their render (empty: README states what results/ holds)."""
    text = readme.read_text()
    rendered = render_readme(text, results_dir)
    now = {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}
    want = {m.group("name"): m.group("body") for m in BLOCK.finditer(rendered)}
    return [n for n in now if now[n] != want[n]]


def update_readme(readme: Path, results_dir: Path) -> list[str]:
    """Re-render README's blocks in place; returns the names of the blocks that changed."""
    from offload_common.files import atomic_write_text

    changed = check_readme(readme, results_dir)
    if changed:
        atomic_write_text(readme, render_readme(readme.read_text(), results_dir))
    return changed


