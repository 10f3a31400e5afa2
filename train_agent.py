#!/usr/bin/env python3
"""offload-gym's main entry point: profile models, inspect traces, train, evaluate and export offloading policies.

``python train_agent.py`` (no subcommand) runs the whole main job (``run``) on the embedded defaults: the committed
frame profile and the real traces in ../shared/traces (or, without ../shared, traces from the fitted generator).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def all_policy_names(setup) -> list[str]:
    """Every baseline for the profile's actions (reuse included), random, the tuned heuristics (cbo, cbo+teacher,
    cbo-cond, cachenet), the hindsight oracle and the link-oracle (knows the true link, not correctness)."""
    from agents.policies import HEURISTICS

    return [*setup.action_names(), "random", *HEURISTICS, "oracle", "link-oracle"]


def _known_policies(names: list[str], setup) -> list[str]:
    """``--policies`` as names: ``all`` means every name; an unknown name is an error listing the known ones."""
    known = all_policy_names(setup)
    names = known if names == ["all"] else names
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--policies: unknown {', '.join(unknown)}; expected 'all' or names from {', '.join(known)}")
    return names


def _tuned_for_run(args: argparse.Namespace, setup, origin: str, more: str = "") -> tuple[dict, dict]:
    """What ``run`` prints about its inputs and splits, then every named policy with the heuristics tuned (on
    training traces and scenes only) and their tuned parameters printed."""
    from agents.evaluation import named_policies

    print(f"profile {args.profile}: {setup.profile.n_frames} frames; traces: {origin}")
    print(f"split: {len(setup.train_traces)} train / {len(setup.test_traces)} test traces (uplink only), "
          f"clips split {1 - setup.config.test_fraction:.0%} / {setup.config.test_fraction:.0%}{more}")
    policies, tuning = named_policies(setup, all_policy_names(setup), args.seed)
    _print_tuning(tuning)
    return policies, tuning


def _print_tuning(tuning: dict) -> None:
    from agents.policies import HEURISTICS, TUNED_REFERENCES

    for name in (*HEURISTICS, *TUNED_REFERENCES):
        if name in tuning:
            params = {k: v for k, v in tuning[name]["params"].items()
                      if k not in ("name", "server_accuracy", "teacher_accuracy")}
            took = f" in {tuning[name]['seconds']} s" if "seconds" in tuning[name] else ""
            print(f"  {name} tuned on {tuning['tuned_on']}{took}: {params}")


def _load_setup(args: argparse.Namespace):
    """The experiment's inputs and splits, where the traces came from, and a source that reloads them
    (a path, or ``"embedded"``) for processes that must rebuild the env themselves (RLlib EnvRunners)."""
    from agents.evaluation import Setup
    from bandwidth_traces import EMBEDDED_ORIGIN, default_traces
    from perception import FrameProfile

    profile = FrameProfile.load(args.profile)
    traces, origin = default_traces(args.traces, seed=args.seed)
    source = "embedded" if origin == EMBEDDED_ORIGIN else origin
    return Setup.create(profile, traces), origin, source


def _train_config(args: argparse.Namespace):
    """The run's ``TrainConfig`` from the flags (the SB3 validation cadence follows ``--timesteps``)."""
    from agents.training import TrainConfig

    framework = getattr(args, "framework", "sb3")
    if framework == "rllib":
        return TrainConfig(framework="rllib", algo="ppo", seed=args.seed, iterations=args.iterations,
                           num_env_runners=args.num_env_runners,
                           bandwidth_scales=tuple(args.train_bandwidth_scales))
    return TrainConfig.sized(args.timesteps, algo=args.algo, n_envs=args.n_envs, seed=args.seed,
                             bandwidth_scales=tuple(args.train_bandwidth_scales))


def _out_dir(args: argparse.Namespace) -> Path:
    """The run folder of a ``train`` / ``run`` command (``--out``, else runs/<algo or rllib-ppo>-seed<seed>)."""
    if args.out is not None:
        return args.out
    name = "rllib-ppo" if getattr(args, "framework", "sb3") == "rllib" else args.algo
    return Path("runs") / f"{name}-seed{args.seed}"


def _check_run_out(args: argparse.Namespace) -> Path:
    """Before any input is loaded: ``--out`` is a writable folder and holds a run exactly when it should."""
    from agents.training import check_run_dir
    from offload_common.files import check_output_dir

    out = check_output_dir(_out_dir(args), "--out")
    _train_config(args)  # settings that contradict each other fail here, before anything is loaded
    if not getattr(args, "tune", False):
        check_run_dir(out, args.resume, args.force)
    else:
        from agents.training import check_not_run_dir

        check_not_run_dir(out, "--out", "a Tune sweep")
    return out


def _run_config(args: argparse.Namespace, setup, origin: str, tcfg) -> dict:
    """What config.json records about a run: inputs, splits, env config and the training settings."""
    return {"command": args.command, "framework": tcfg.framework, "profile": str(args.profile), "traces": origin,
            "seed": args.seed, "env_config": setup.config.to_dict(), "train_config": tcfg.to_dict(),
            "train_traces": len(setup.train_traces), "test_traces": len(setup.test_traces)}


def _prepare_run(args: argparse.Namespace, setup, origin: str):
    """Run folder and training config (SB3 or RLlib): config.json for a new run, the checked settings on resume."""
    from agents.training import RunFolder, prepare_run_dir

    out = _out_dir(args)
    tcfg = _train_config(args)
    stored = prepare_run_dir(out, _run_config(args, setup, origin, tcfg), args.resume, args.force,
                             lambda d: RunFolder(d, tcfg.framework).has_checkpoint())
    if stored is not None:  # keep the run's validation and checkpoint cadence; only the length changes
        tcfg = tcfg.replace(eval_freq=stored["train_config"]["eval_freq"],
                            checkpoint_freq=stored["train_config"]["checkpoint_freq"])
    return out, tcfg


def cmd_run(args: argparse.Namespace) -> int:
    """The main job: tune CBO, train the agent, evaluate everything on held-out traces x clips, write the run."""
    import time

    from agents.evaluation import evaluate_on_test, trace_means, write_report
    from agents.training import load_run_policy, train_sb3

    if args.seeds is not None:
        return cmd_run_seeds(args)
    t0 = time.time()
    _check_run_out(args)
    setup, origin, _ = _load_setup(args)
    out, tcfg = _prepare_run(args, setup, origin)
    policies, tuning = _tuned_for_run(args, setup, origin)
    print(f"training {args.algo.upper()} for {args.timesteps:,} steps -> {out}")
    result = train_sb3(setup, out, tcfg, resume=args.resume, progress=not args.no_progress)
    print(f"trained in {result.seconds:.0f} s; best validation accuracy "
          f"{max(h['val_accuracy'] for h in result.history):.4f}")
    policies[args.algo] = load_run_policy(out, args.algo)
    results = evaluate_on_test(setup, policies, args.episodes, args.seed, progress=not args.no_progress)
    extra = {"traces": origin, "test_traces": len(setup.test_traces), "episodes_per_trace": args.episodes,
             "seed": args.seed, "train_seconds": round(result.seconds, 1), "timesteps": result.timesteps,
             "heuristic_tuning": tuning, "total_seconds": round(time.time() - t0, 1)}
    write_report(results, out, trace_means(setup.test_traces), setup.action_names(), extra)
    print()
    print((out / "report.md").read_text())
    onnx_path = _export_and_check(out, setup)
    print(f"policy exported to {onnx_path} (ONNX Runtime matches PyTorch on held-out observations)")
    print(f"run written to {out}/ in {time.time() - t0:.0f} s")
    return 0


def _export_and_check(run_dir: Path, setup) -> Path:
    """Export the run's best model to ONNX and check greedy-action parity on held-out observations."""
    import numpy as np

    from agents.deploy import OnnxPolicy, export_run
    from agents.evaluation import make_episodes, rollout
    from agents.policies import RandomPolicy
    from agents.training import load_run_policy

    path = export_run(run_dir)
    env = setup.factory("test")(len(setup.test_traces), setup.test_traces)
    rollout(RandomPolicy(len(env.action_names), seed=1), env, make_episodes(env, 1, seed=7))
    obs = env.observe()
    want = load_run_policy(run_dir).logits(obs).argmax(1)
    got = OnnxPolicy(path).act(obs)
    if not np.array_equal(want, got):
        raise RuntimeError(f"exported policy disagrees with PyTorch on {(want != got).sum()} observations")
    return path


def cmd_export(args: argparse.Namespace) -> int:
    """Export a training run's best policy to ONNX for devices."""
    from agents.deploy import OnnxPolicy, export_run

    path = export_run(args.run_dir, args.output, flag="-o/--output")
    pol = OnnxPolicy(path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.1f} kB): obs float32 [batch, {pol.dim}] -> logits, action; "
          f"actions {pol.action_names}")
    return 0


def cmd_train_rllib(args: argparse.Namespace, setup, source: str) -> int:
    """RLlib PPO on a local Ray instance or an existing cluster (--address); --tune runs a small sweep."""
    from agents.training import train_rllib, tune_sweep

    if args.tune:
        res = tune_sweep(setup, _out_dir(args), str(args.profile), source, _train_config(args), args.address)
        for row in res["trials"]:
            print(row)
        return 0
    out, cfg = _prepare_run(args, setup, source)
    info = train_rllib(setup, out, str(args.profile), source, cfg, args.address, resume=args.resume)
    print(f"ray.init {info['ray_init_s']} s, build {info['build_s']} s, {info['seconds_per_iteration']:.2f} s per "
          f"iteration; best validation accuracy {info['best_val_accuracy']:.4f}; checkpoint in {out}/checkpoint")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a policy on the training split (stable-baselines3, or RLlib with --framework rllib)."""
    from agents.training import train_sb3

    if args.seeds is not None:
        return cmd_train_seeds(args)
    _check_run_out(args)
    if args.framework == "rllib" and args.address:
        from agents.training import check_cluster

        check_cluster(args.address)  # a wrong address or token fails here, before anything is loaded or written
    setup, origin, source = _load_setup(args)
    if args.framework == "rllib":
        return cmd_train_rllib(args, setup, source)
    out, tcfg = _prepare_run(args, setup, origin)
    result = train_sb3(setup, out, tcfg, resume=args.resume, progress=not args.no_progress)
    print(f"trained {result.timesteps:,} steps in {result.seconds:.0f} s; model {result.model_path}, "
          f"best (validation) {result.best_path}, learning curve {out / 'learning_curve.png'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Tune CBO on the training split, evaluate the chosen policies on the held-out split, write the report."""
    from agents.evaluation import evaluate_on_test, named_policies
    from agents.training import check_not_run_dir

    check_not_run_dir(args.out, "--out", "an evaluation report")
    names = [n.strip() for n in args.policies.split(",") if n.strip()]
    if not names and not args.runs:
        raise ValueError(f"--policies {args.policies!r}: no policy names; expected 'all' or a comma-separated list "
                         "(e.g. local,cbo,oracle), or training runs with --runs")
    test = None
    if args.test_traces is not None:  # before anything slow: a bad path fails at once
        from agents.evaluation import load_test_traces

        test = load_test_traces(args.test_traces)
    setup, origin, _ = _load_setup(args)
    names = _known_policies(names, setup)
    learned, groups = _load_runs(args.runs)  # before CBO tuning: a bad run folder fails at once
    removed: list[str] = []
    if test is not None:
        from agents.evaluation import cross_setup

        setup, removed = cross_setup(setup, test)
    policies, tuning = named_policies(setup, names, args.seed)
    policies.update(learned)
    results = evaluate_on_test(setup, policies, args.episodes, args.seed, progress=True)
    extra = {"traces": origin, "test_traces": len(setup.test_traces), "episodes_per_trace": args.episodes,
             "seed": args.seed, "profile": str(args.profile), "env_config": setup.config.to_dict(),
             "cbo_tuning": tuning}
    _write_evaluation_report(args, setup, results, extra, groups, test, removed)
    print((args.out / "report.md").read_text())
    print(f"wrote {args.out}/report.json, report.md and plots")
    return 0


def _seed_dirs(args: argparse.Namespace) -> tuple[Path, list[tuple[int, Path]]]:
    """``--seeds``: the seeds folder (``--out``, else runs/<algo>-seeds<s1>-<s2>...) and its run folder per seed
    (``seed<N>``), checked before anything is loaded. With ``--resume`` a seed whose folder holds a run continues
    it and a seed without one starts (so a multi-seed job cut short resumes where it stopped); ``--force`` starts
    every seed again."""
    from agents.evaluation import check_seed_count
    from agents.training import RunFolderError, holds_run
    from offload_common.files import check_output_dir

    check_seed_count(args.seeds, args.max_seeds)
    if args.resume and args.force:
        raise RunFolderError("--resume and --force contradict each other: --resume continues the seeds' runs in "
                             "--out, --force deletes them")
    name = "rllib-ppo" if getattr(args, "framework", "sb3") == "rllib" else args.algo
    base = args.out if args.out is not None else Path("runs") / f"{name}-seeds{'-'.join(map(str, args.seeds))}"
    check_output_dir(base, "--out")
    if holds_run(base):
        raise RunFolderError(f"--out {base} holds a single-seed training run; --seeds writes one run per seed into "
                             "sub-folders seed<N> of --out: choose another --out")
    dirs = [(seed, base / f"seed{seed}") for seed in args.seeds]
    taken = [str(d) for _, d in dirs if holds_run(d)]
    if taken and not (args.resume or args.force):
        raise RunFolderError(f"--out {base}: {', '.join(taken)} already hold(s) a training run; pass --resume to "
                             "continue the seeds' runs (seeds without a run start) or --force to delete them and "
                             "start again (or choose another --out)")
    return base, dirs


def _seed_args(args: argparse.Namespace, seed: int, out: Path) -> argparse.Namespace:
    """The single-run arguments of one seed of a ``--seeds`` command (its seed, its folder, resume if it has a run)."""
    from agents.training import holds_run

    return argparse.Namespace(**{**vars(args), "seed": seed, "out": out, "seeds": None,
                                 "resume": bool(args.resume and holds_run(out))})


def cmd_train_seeds(args: argparse.Namespace) -> int:
    """``train --seeds``: one training run per seed in OUT/seed<N> (the runs only; ``evaluate --runs`` or
    ``run --seeds`` compare them). The traces are loaded once, with ``--seed``."""
    from agents.training import train_sb3

    if args.framework == "rllib" and args.tune:
        raise ValueError("--seeds: not with --tune (a Tune sweep has its own trials); train the chosen settings "
                         "with --seeds afterwards")
    base, dirs = _seed_dirs(args)
    if args.framework == "rllib" and args.address:
        from agents.training import check_cluster

        check_cluster(args.address)
    setup, origin, source = _load_setup(args)
    for seed, out in dirs:
        sub = _seed_args(args, seed, out)
        print(f"seed {seed}: {'resuming' if sub.resume else 'training'} -> {out}")
        if args.framework == "rllib":
            cmd_train_rllib(sub, setup, source)
            continue
        out, tcfg = _prepare_run(sub, setup, origin)
        result = train_sb3(setup, out, tcfg, resume=sub.resume, progress=not args.no_progress)
        print(f"seed {seed}: trained {result.timesteps:,} steps in {result.seconds:.0f} s; best (validation) "
              f"{result.best_path}")
    print(f"{len(dirs)} runs in {base}/; compare them on the same episodes with: train_agent.py evaluate --runs "
          + " ".join(str(d) for _, d in dirs))
    return 0


def cmd_run_seeds(args: argparse.Namespace) -> int:
    """``run --seeds``: the main job once per training seed, one report over all seeds.

    The heuristics are tuned once (with ``--seed``), every seed's policy is trained in OUT/seed<N> and exported
    there, and all of them are evaluated with the heuristics on one episode set (``--seed``), so each seed's
    difference to the best heuristic is paired; the report in OUT adds the across-seed mean, min/max and 95%
    Student-t interval of the accuracy and of that difference.
    """
    import time

    from agents.evaluation import (
        SEED_INTERVAL_NOTE,
        SeedGroup,
        across_seeds,
        best_heuristic,
        evaluate_on_test,
        seeds_markdown,
        trace_means,
        write_report,
    )
    from agents.training import load_run_policy, train_sb3

    t0 = time.time()
    base, dirs = _seed_dirs(args)
    setup, origin, _ = _load_setup(args)
    policies, tuning = _tuned_for_run(args, setup, origin, f"; training seeds {', '.join(map(str, args.seeds))}")
    trained: dict[str, dict] = {}
    for seed, out in dirs:
        sub = _seed_args(args, seed, out)
        out, tcfg = _prepare_run(sub, setup, origin)
        print(f"seed {seed}: training {args.algo.upper()} for {args.timesteps:,} steps -> {out}")
        result = train_sb3(setup, out, tcfg, resume=sub.resume, progress=not args.no_progress)
        name = f"{args.algo}-seed{seed}"
        policies[name] = load_run_policy(out, name)
        onnx_path = _export_and_check(out, setup)
        trained[name] = {"seed": seed, "run": str(out), "train_seconds": round(result.seconds, 1),
                         "timesteps": result.timesteps, "onnx": str(onnx_path),
                         "best_val_accuracy": max(h["val_accuracy"] for h in result.history)}
        print(f"seed {seed}: trained in {result.seconds:.0f} s; best validation accuracy "
              f"{trained[name]['best_val_accuracy']:.4f}; exported {onnx_path}")
    group = SeedGroup(args.algo, tuple(args.seeds), tuple(trained))
    results = evaluate_on_test(setup, policies, args.episodes, args.seed, progress=not args.no_progress)
    summary = {group.name: across_seeds(results, group, best_heuristic(results))}
    extra = {"traces": origin, "test_traces": len(setup.test_traces), "episodes_per_trace": args.episodes,
             "seed": args.seed, "training_seeds": list(args.seeds), "runs": trained, "heuristic_tuning": tuning,
             "total_seconds": round(time.time() - t0, 1)}
    write_report(results, base, trace_means(setup.test_traces), setup.action_names(), extra, entries=summary,
                 meta={"across_seeds": summary, "seed_interval": SEED_INTERVAL_NOTE},
                 sections=[seeds_markdown(summary)])
    print()
    print((base / "report.md").read_text())
    print(f"{len(dirs)} runs and one report written to {base}/ in {time.time() - t0:.0f} s")
    return 0


def _load_runs(runs: Sequence[Path]) -> tuple[dict, list]:
    """The learned policies of ``--runs`` by name, runs of one config that differ only in seed grouped
    (``agents.seeds.group_runs``: named <algo>-seed<N>, with an across-seed entry in the report)."""
    from agents.evaluation import group_runs
    from agents.training import load_run_policy

    named, groups = group_runs(runs)
    learned = {}
    for run, name in named:
        pol = load_run_policy(run)
        pol.name = name
        learned[name] = pol
    return learned, groups


def _write_evaluation_report(args: argparse.Namespace, setup, results: dict, extra: dict, groups: list, test,
                           removed: list[str]) -> None:
    """``evaluate``'s report, plus, with ``--test-traces``, warnings for one-trace families and what was removed
    from tuning, and across-seed entries for runs that differ only in seed (the plain report when neither applies)."""
    from agents.evaluation import (
        SEED_INTERVAL_NOTE,
        across_seeds,
        best_heuristic,
        describe_test_side,
        mark_family_warnings,
        runs_trained_on,
        seeds_markdown,
        single_trace_families,
        trace_means,
        write_report,
    )

    warnings: list[str] = []
    meta: dict = {}
    if test is not None:
        family_warnings = single_trace_families(setup.test_traces)
        mark_family_warnings(results, family_warnings)
        warnings += [*family_warnings.values(), *runs_trained_on(args.runs, setup.test_traces)]
        meta["test_side"] = describe_test_side(args.test_traces, setup.test_traces, removed)
        extra["test_traces_path"] = str(args.test_traces)
        if removed:
            print(f"note: {len(removed)} training trace(s) of --traces are copies of test traces and were not tuned "
                  f"on: {', '.join(removed[:5])}{' ...' if len(removed) > 5 else ''}")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    ref = best_heuristic(results)
    summaries = {g.name: across_seeds(results, g, ref) for g in groups}
    if summaries:
        meta.update({"across_seeds": summaries, "seed_interval": SEED_INTERVAL_NOTE})
    write_report(results, args.out, trace_means(setup.test_traces), setup.action_names(), extra,
                 warnings=warnings, entries=summaries, meta=meta,
                 sections=[seeds_markdown(summaries)] if summaries else [])


SWEEP_POLICIES = "local,cbo,cbo+teacher,cbo-cond,cachenet,oracle"


def cmd_sweep(args: argparse.Namespace) -> int:
    """Accuracy and MB/frame of every policy against the bandwidth scale and the deadline (held-out split;
    heuristics re-tuned per point on training traces, learned runs as trained)."""
    import time

    from agents.evaluation import SWEEP_PARTIAL, run_sweep, write_sweep
    from agents.training import check_not_run_dir

    t0 = time.time()
    check_not_run_dir(args.out, "--out", "a sweep")
    names = [n.strip() for n in args.policies.split(",") if n.strip()]
    if not names and not args.runs:
        raise ValueError(f"--policies {args.policies!r}: no policy names; expected 'all' or a comma-separated list "
                         f"(default {SWEEP_POLICIES}), or training runs with --runs")
    setup, origin, _ = _load_setup(args)
    names = _known_policies(names, setup)
    learned, groups = _load_runs(args.runs)
    print(f"sweep on {len(setup.test_traces)} held-out traces x {args.episodes} episode(s): bandwidth x "
          f"{', '.join(f'{v:g}' for v in args.bandwidth_scales)}; deadline "
          f"{', '.join(f'{v:g}' for v in args.deadlines_ms)} ms; heuristics re-tuned at every point")
    payload = run_sweep(setup.profile, setup.train_traces, setup.test_traces, setup.config, names, learned, groups,
                        args.bandwidth_scales, args.deadlines_ms, args.episodes, args.seed,
                        max_evaluations=args.max_evaluations, partial=args.out / SWEEP_PARTIAL)
    extra = {"traces": origin, "test_traces": len(setup.test_traces), "train_traces": len(setup.train_traces),
             "episodes_per_trace": args.episodes, "seed": args.seed, "profile": str(args.profile),
             "runs": [str(r) for r in args.runs], "total_seconds": round(time.time() - t0, 1)}
    write_sweep(payload, args.out, extra)
    print((args.out / "sweep.md").read_text())
    print(f"wrote {args.out}/sweep.json, sweep.md and sweep_*.png in {time.time() - t0:.0f} s")
    return 0


def _listed(parse):
    """An argparse type from a list parser that raises ValueError (argparse then names the flag in its error)."""
    def wrapped(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = "list"
    return wrapped


def cmd_traces(args: argparse.Namespace) -> int:
    """Per-family statistics of the traces the job would use."""
    from bandwidth_traces.__main__ import main as traces_main

    target = args.traces
    if target is None:
        from bandwidth_traces import shared_traces_dir

        shared = shared_traces_dir()
        target = str(shared) if shared is not None else "embedded"
    print(f"traces: {target}")
    return traces_main(["stats", target])


def cmd_profile(args: argparse.Namespace) -> int:
    """Build a frame profile (runs every model on every frame; ~20 min for the full dataset on 2 cores)."""
    from perception.__main__ import run_build

    return run_build(args)


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (argparse names the flag in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _nonempty(kind: type = str):
    """An argparse type: a non-empty string (an empty path would silently mean the current folder)."""
    def parse(text: str):
        if not text.strip():
            raise argparse.ArgumentTypeError("empty value; expected a path")
        return kind(text)

    parse.__name__ = "path"
    return parse


def _address(text: str) -> str:
    """An argparse type: a Ray cluster address HOST:PORT."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT of the Ray head (e.g. 10.0.0.5:6379), got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    from agents.evaluation import MAX_EVALUATIONS, MAX_SEEDS, parse_positive_list, parse_seeds
    from agents.training import ALGOS, FRAMEWORKS, TrainConfig
    from perception import DEFAULT_PROFILE
    from perception.__main__ import add_build_args

    defaults = TrainConfig()

    parser = argparse.ArgumentParser(prog="train_agent.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--profile", type=_nonempty(Path), default=DEFAULT_PROFILE,
                       help="frame profile .npz (default: committed)")
        p.add_argument("--traces", type=_nonempty(), default=None, help="trace file or folder, or 'embedded' for the "
                       "fitted generator (default: ../shared/traces, else the embedded generator)")
        p.add_argument("--seed", type=_int_at_least(0), default=0)
        return p

    def training(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--algo", choices=ALGOS["sb3"], default=defaults.algo,
                       help="SB3 algorithm (default: %(default)s)")
        p.add_argument("--timesteps", type=_int_at_least(1), default=defaults.timesteps,
                       help="SB3: environment steps (default: %(default)s)")
        p.add_argument("--n-envs", type=_int_at_least(1), default=defaults.n_envs,
                       help="SB3: parallel envs in the batched env (default: %(default)s)")
        p.add_argument("--train-bandwidth-scales", type=_listed(parse_positive_list),
                       default=list(defaults.bandwidth_scales), metavar="S1,S2,...",
                       help="SB3: train (and pick the best model) on the training traces at each of these throughput "
                       "scales, e.g. 0.25,0.5,1,2,4 for a policy robust to slower and faster networks (default: 1, "
                       "the traces as recorded)")
        p.add_argument("--out", type=_nonempty(Path), default=None,
                       help="run folder (default: runs/<algo>-seed<seed>); a folder that holds a run needs "
                       "--resume or --force")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint "
                       "(its settings must match this command's, except --timesteps / --iterations)")
        p.add_argument("--force", action="store_true", help="delete the run in --out and start a new one")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("--seeds", type=_listed(parse_seeds), default=None, metavar="S1,S2,...",
                       help="train one run per training seed (comma-separated, distinct, >= 0) into --out/seed<N> "
                       "(default --out: runs/<algo>-seeds<S1>-<S2>...). train: the runs only. run: also tunes the "
                       "heuristics once and writes one report in --out with per-seed results and the across-seed "
                       "mean, min/max and 95%% Student-t interval, every seed evaluated on the heuristics' episodes. "
                       "--seed still sets the traces (embedded generator), tuning and evaluation episodes; "
                       "--resume continues the seeds that have a run and starts the others")
        p.add_argument("--max-seeds", type=_int_at_least(1), default=MAX_SEEDS,
                       help="refuse more --seeds than this (default: %(default)s)")
        return p

    p = training(common(sub.add_parser("run", help="the whole main job on the embedded defaults (the default command)")))
    p.add_argument("--episodes", type=_int_at_least(1), default=8,
                   help="evaluation episodes per test trace (default: %(default)s)")
    p = training(common(sub.add_parser("train", help="train a policy (stable-baselines3 or RLlib) on the training split")))
    p.add_argument("--framework", choices=FRAMEWORKS, default=defaults.framework)
    p.add_argument("--num-env-runners", type=_int_at_least(0), default=defaults.num_env_runners,
                   help="RLlib: EnvRunner processes (default: %(default)s)")
    p.add_argument("--iterations", type=_int_at_least(1), default=defaults.iterations,
                   help=f"RLlib: training iterations of {defaults.train_batch:,} steps (default: %(default)s)")
    p.add_argument("--address", type=_address, default=None, help="RLlib: join the Ray cluster whose head is at "
                   "HOST:PORT (token authentication is handled; default: a local Ray, loopback only)")
    p.add_argument("--tune", action="store_true", help="RLlib: Ray Tune sweep over learning rate x entropy")
    p = common(sub.add_parser("evaluate", help="evaluate policies (CBO, baselines, learned) on held-out traces"))
    p.add_argument("--policies", default="all", help="comma-separated names (local, offload@<px>, teacher, random, "
                   "cbo, cbo+teacher, cbo-cond, cachenet, oracle, link-oracle) or 'all' (default)")
    p.add_argument("--episodes", type=_int_at_least(1), default=4,
                   help="episodes per test trace (default: %(default)s)")
    p.add_argument("--out", type=_nonempty(Path), default=Path("runs/evaluate"),
                   help="report folder (default: %(default)s)")
    p.add_argument("--runs", type=_nonempty(Path), nargs="*", default=[], help="training run folders (SB3 or RLlib) to "
                   "evaluate beside the baselines; runs whose config.json differs only in the seed (e.g. "
                   "OUT/seed0 OUT/seed1 of train --seeds) are one learned method: each is reported as "
                   "<algo>-seed<N> and the report adds their across-seed mean, min/max and 95%% Student-t interval, "
                   "and of their paired difference to the best heuristic")
    p.add_argument("--test-traces", type=_nonempty(), default=None, metavar="PATH",
                   help="a trace file or folder (cooked or Mahimahi; .down skipped) whose every trace is a test "
                   "trace: heuristics are tuned on the training side of --traces (minus any copy of a test trace), "
                   "families are PATH's folders, held-out scenes as usual; a family of one trace is reported with "
                   "a warning")
    p = common(sub.add_parser("sweep", help="accuracy and MB/frame of every policy against bandwidth scale and "
                              "deadline (the standard offloading figure): sweep.md, sweep.json, one PNG per axis"))
    p.add_argument("--bandwidth-scales", type=_listed(parse_positive_list), default=[0.25, 0.5, 1.0, 2.0, 4.0],
                   metavar="X1,X2,...", help="factors on every trace's throughput, deadline at its default "
                   "(default: 0.25,0.5,1,2,4)")
    p.add_argument("--deadlines-ms", type=_listed(parse_positive_list), default=[100.0, 150.0, 200.0, 300.0, 400.0],
                   metavar="D1,D2,...", help="deadlines in ms, traces as recorded (default: 100,150,200,300,400)")
    p.add_argument("--policies", default=SWEEP_POLICIES, help="comma-separated names or 'all' (default: "
                   "%(default)s); heuristics are re-tuned on training traces at every point")
    p.add_argument("--runs", type=_nonempty(Path), nargs="*", default=[], help="training run folders, used as "
                   "trained at every point (runs differing only in seed are aggregated, as in evaluate)")
    p.add_argument("--episodes", type=_int_at_least(1), default=2,
                   help="episodes per held-out trace at every point (default: %(default)s)")
    p.add_argument("--out", type=_nonempty(Path), default=Path("runs/sweep"),
                   help="output folder (default: %(default)s); a killed sweep run again with the same --out and "
                   "settings reuses its finished points")
    p.add_argument("--max-evaluations", type=_int_at_least(1), default=MAX_EVALUATIONS,
                   help="refuse a sweep of more points x policies than this (default: %(default)s)")
    p = sub.add_parser("export", help="export a trained policy to ONNX for devices")
    p.add_argument("run_dir", type=_nonempty(Path), help="training run folder (holds train.json and best_model.zip)")
    p.add_argument("-o", "--output", type=_nonempty(Path), default=None,
                   help="ONNX file (default: RUN_DIR/policy.onnx)")
    add_build_args(sub.add_parser("profile", help="build a frame profile by running the real models on photos"))
    p = sub.add_parser("traces", help="per-family statistics of the bandwidth traces")
    p.add_argument("--traces", type=_nonempty(), default=None,
                   help="trace file or folder, or 'embedded' (default: ../shared/traces)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"run", "train", "evaluate", "export", "profile", "traces", "sweep", "-h", "--help"}
    if not argv or argv[0] not in commands:  # no subcommand: the main job, with any options given
        argv = ["run", *argv]
    args = parser.parse_args(argv)
    args.command = ["train_agent.py", *argv]  # as given (in-process callers pass argv; sys.argv is theirs)
    handlers = {"run": cmd_run, "train": cmd_train, "traces": cmd_traces, "profile": cmd_profile,
                "evaluate": cmd_evaluate, "export": cmd_export, "sweep": cmd_sweep}
    try:
        return handlers[args.cmd](args)
    except (FileNotFoundError, ValueError, ConnectionError) as exc:  # bad input or cluster: the message says what
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
