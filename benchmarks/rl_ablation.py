"""Ablation of PPO training variants against the tuned references, on validation and held-out episodes.

    python benchmarks/rl_ablation.py --candidates baseline,bc-cachenet --seeds 0,1 --timesteps 400000 \\
        --out results/ablation/warm_start.json

Candidates: ``baseline`` (the main job's PPO settings; trained and validated at ``--train-bandwidth-scales``, by
default x1, the traces as recorded, while the main job trains over ``agents.training.MIXED_BANDWIDTH_SCALES``),
``bc-<reference>`` (behaviour cloning from the tuned reference, then PPO: ``TrainConfig.warm_start``), optionally
with ``+`` settings of TrainConfig (``baseline+n_epochs=5``, ``bc-learned-greedy+action_mask=true``,
``baseline+net_arch=512x512``, ``baseline+algo=recurrent-ppo``). Every
candidate trains with each seed for ``--timesteps`` steps (a reduced budget when below the main job's 600,000: say
so when reporting). References (cachenet, learned-greedy) are tuned once on
training traces x training scenes, as the main job does. Reported per run: the best validation accuracy (the
run's own validation traces, the number the run picks its model by; the references are scored on the same
episodes), the held-out accuracy on ``--episodes`` episodes per test trace and its paired difference to the best
reference there, and the wall time. ``--bandwidth-scale X`` runs all of it at X times every trace's throughput, as
one sweep point (the references tuned there too). The JSON records the command and the git commit.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_commit, write_json  # noqa: E402

REFERENCES = ("cachenet", "learned-greedy")


def _candidate(spec: str) -> tuple[str, dict[str, Any]]:
    """``bc-cachenet+n_epochs=5`` -> ("cachenet", {"n_epochs": 5})."""
    head, *settings = spec.split("+")
    if head != "baseline" and not head.startswith("bc-"):
        raise ValueError(f"--candidates: {spec!r}: expected baseline or bc-<reference>, then optional +key=value")
    if head.startswith("bc-") and head[3:] not in REFERENCES:
        raise ValueError(f"--candidates: {spec!r}: warm start from one of {REFERENCES}")
    out: dict[str, Any] = {}
    for item in settings:
        key, _, value = item.partition("=")
        if value in ("true", "false"):  # a switch: baseline+action_mask=true
            out[key] = value == "true"
            continue
        if "x" in value and all(part.isdigit() for part in value.split("x")):  # layer sizes: net_arch=512x512
            out[key] = tuple(int(part) for part in value.split("x"))
            continue
        if key == "algo":  # a name: baseline+algo=recurrent-ppo
            out[key] = value
            continue
        try:
            out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            raise ValueError(f"--candidates: {spec!r}: {item!r} is not key=number, key=true/false or "
                             "algo=name") from None
    return ("none" if head == "baseline" else head[3:]), out


def _references_from_report(setup: Any, path: Path) -> dict[str, Any]:
    """cachenet and learned-greedy exactly as the main job whose report_meta.json is ``path`` tuned them."""
    import json

    from agents.evaluation.greedy import fit_learned_greedy
    from agents.policies import CacheNetPolicy, LearnedGreedyPolicy

    meta = json.loads(path.read_text())
    pols = meta["policies"]
    cache = CacheNetPolicy(**{k: v for k, v in pols["cachenet"].items() if k != "name"})
    recorded = pols["learned-greedy"]
    model = fit_learned_greedy(setup, cache, meta["run"]["seed"])
    if model.fingerprint() != recorded["model"]:
        raise ValueError(f"{path}: learned-greedy refitted to model {model.fingerprint()}, the report has "
                         f"{recorded['model']}: other inputs or code; tune again without --from-report")
    return {"cachenet": cache,
            "learned-greedy": LearnedGreedyPolicy(model, recorded["send_bonus"], recorded["reuse_bonus"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default="baseline,bc-cachenet")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--timesteps", type=int, default=400_000)
    parser.add_argument("--episodes", type=int, default=2, help="held-out episodes per test trace")
    parser.add_argument("--train-bandwidth-scales", default="1", metavar="S1,S2,...",
                        help="throughput scales every candidate trains and validates at, the references validated at "
                        "the same (default: 1, the traces as recorded; the main job's are 0.25,0.5,1,2,4)")
    parser.add_argument("--bandwidth-scale", type=float, default=1.0, metavar="X",
                        help="the whole ablation at X times every trace's throughput, as one sweep point: the "
                        "references tuned, the candidates trained (--train-bandwidth-scales counts from X) and "
                        "validated, and the held-out episodes played there (default: 1, the traces as recorded)")
    parser.add_argument("--temporal-observation", action="store_true",
                        help="every policy, references included, observes the student's recent history as well "
                        "(EnvConfig.temporal_observation); the references are then tuned here, not read from a report")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tuning-cache", type=Path, default=None,
                        help="pickle of the tuned references (written when missing, read when present)")
    parser.add_argument("--from-report", type=Path, default=None, metavar="REPORT_META",
                        help="take the references' tuned parameters from a main job's report_meta.json (same "
                        "inputs and commit) instead of tuning again: cachenet as recorded, learned-greedy's model "
                        "refitted (deterministic; its fingerprint must match the record) with the recorded bonuses")
    args = parser.parse_args()
    if not 0 < args.bandwidth_scale < float("inf"):
        parser.error(f"--bandwidth-scale: {args.bandwidth_scale!r}: expected a number > 0")
    if args.bandwidth_scale != 1.0 and (args.from_report is not None or args.tuning_cache is not None):
        parser.error("--bandwidth-scale: the references must be tuned at that scale; drop --from-report / "
                     "--tuning-cache")
    if args.temporal_observation and (args.from_report is not None or args.tuning_cache is not None):
        parser.error("--temporal-observation: the references must be tuned on the observation with the temporal "
                     "fields; drop --from-report / --tuning-cache")
    cands = {c: _candidate(c) for c in args.candidates.split(",")}
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        scales = tuple(float(s) for s in args.train_bandwidth_scales.split(","))
    except ValueError:
        parser.error(f"--train-bandwidth-scales: {args.train_bandwidth_scales!r} is not a comma-separated list of "
                     "numbers > 0")
    if not all(0 < s < float("inf") for s in scales):
        parser.error(f"--train-bandwidth-scales: {args.train_bandwidth_scales!r}: expected numbers > 0")

    from agents.evaluation import (
        Setup,
        Validation,
        best_heuristic,
        evaluate_on_test,
        named_policies,
        paired_versus,
    )
    from agents.training import TrainConfig, load_run_policy, train_sb3
    from bandwidth_traces import default_traces
    from envs import EnvConfig
    from perception import DEFAULT_PROFILE, FrameProfile

    t0 = time.time()
    setup = Setup.create(FrameProfile.load(DEFAULT_PROFILE), default_traces(None, seed=0)[0],
                         EnvConfig(temporal_observation=args.temporal_observation))
    if args.bandwidth_scale != 1.0:  # one sweep point: train and test traces scaled alike (sweep_point's Setup)
        setup = Setup(setup.profile, setup.config, [t.scaled(args.bandwidth_scale) for t in setup.train_traces],
                      [t.scaled(args.bandwidth_scale) for t in setup.test_traces])
    if args.from_report is not None:
        refs = _references_from_report(setup, args.from_report)
        tuning_s = None
    elif args.tuning_cache is not None and args.tuning_cache.exists():
        refs = pickle.loads(args.tuning_cache.read_bytes())
        tuning_s = None
    else:
        t = time.time()
        refs, _ = named_policies(setup, list(REFERENCES), 0)
        tuning_s = round(time.time() - t, 1)
        if args.tuning_cache is not None:
            args.tuning_cache.write_bytes(pickle.dumps(refs))
    print(f"references ready ({tuning_s} s tuning)", flush=True)
    runs: list[dict[str, Any]] = []
    learned = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            ref_vals: dict[int, dict[str, float]] = {}  # per number of validation episodes: the references there
            for name, (warm, settings) in cands.items():
                n_val = int(settings.get("val_episodes", TrainConfig().val_episodes))
                if n_val not in ref_vals:
                    val = Validation.create(setup, TrainConfig().val_fraction, seed, scales, episodes=n_val)
                    ref_vals[n_val] = {n: val.accuracy(p) for n, p in refs.items()}
                ref_val = ref_vals[n_val]
                tcfg = TrainConfig.sized(args.timesteps, seed=seed, warm_start=warm, bandwidth_scales=scales,
                                         **settings)
                out = Path(tmp) / f"{name}-seed{seed}".replace("+", "_").replace("=", "")
                t = time.time()
                res = train_sb3(setup, out, tcfg, progress=False, teacher=refs.get(warm))
                wall = round(time.time() - t, 1)
                key = f"{name} seed{seed}"
                learned[key] = load_run_policy(out, key)
                runs.append({"candidate": name, "seed": seed, "timesteps": res.timesteps, "wall_s": wall,
                             "train_s": round(res.seconds, 1),
                             "best_val_accuracy": max(h["val_accuracy"] for h in res.history),
                             "val_curve": [(h["timesteps"], round(h["val_accuracy"], 4)) for h in res.history],
                             "references_val_accuracy": ref_val, "train_config": tcfg.to_dict()})
                print(f"{key}: best validation {runs[-1]['best_val_accuracy']:.4f} (references "
                      + ", ".join(f"{n} {v:.4f}" for n, v in ref_val.items()) + f") in {wall} s", flush=True)
        results = evaluate_on_test(setup, {**refs, **learned}, args.episodes, 0)
    best = best_heuristic(results)
    paired = paired_versus(results, best)
    for run in runs:
        key = f"{run['candidate']} seed{run['seed']}"
        run["test"] = {fam: {"accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"],
                             f"minus_{best}": paired[key][fam]["difference"],
                             f"minus_{best}_ci95": paired[key][fam]["difference_ci95"]}
                       for fam, m in results[key].metrics.items()}
    summary = {}
    for name in cands:
        rs = [r for r in runs if r["candidate"] == name]
        summary[name] = {
            "seeds": [r["seed"] for r in rs],
            "best_val_accuracy_mean": float(np.mean([r["best_val_accuracy"] for r in rs])),
            "val_minus_best_reference_per_seed": [
                r["best_val_accuracy"] - max(r["references_val_accuracy"].values()) for r in rs],
            "test_accuracy_mean": float(np.mean([r["test"]["all"]["accuracy"] for r in rs])),
            f"test_minus_{best}_per_seed": [r["test"]["all"][f"minus_{best}"] for r in rs],
            "wall_s_mean": float(np.mean([r["wall_s"] for r in rs]))}
    refs_test = {n: {fam: m["accuracy"] for fam, m in results[n].metrics.items()} for n in refs}
    write_json(args.out, {"command": " ".join(["python", *sys.argv]), "git_commit": git_commit(),
                          "timesteps": args.timesteps, "train_bandwidth_scales": list(scales),
                          "bandwidth_scale": args.bandwidth_scale,
                          "temporal_observation": args.temporal_observation,
                          "test_episodes_per_trace": args.episodes,
                          "best_reference_on_test": best, "references_test": refs_test, "summary": summary,
                          "runs": runs, "tuning_seconds": tuning_s, "total_seconds": round(time.time() - t0, 1)})
    print(f"best reference on the held-out episodes: {best}")
    for name, s in summary.items():
        print(f"{name}: validation {s['best_val_accuracy_mean']:.4f} (minus best reference per seed "
              + ", ".join(f"{d:+.4f}" for d in s["val_minus_best_reference_per_seed"])
              + f"), held-out {s['test_accuracy_mean']:.4f} (minus {best} "
              + ", ".join(f"{d:+.4f}" for d in s[f"test_minus_{best}_per_seed"]) + f"), {s['wall_s_mean']:.0f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
