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

from offload_common.cli import (
    argtype,
    host_port,
    int_at_least,
    nonempty,
    parse_names,
    parse_positive_list,
    parse_seeds,
    slowdown_value,
)

# Each handler parses its flags into the typed config of agents.workflow (or the package that owns the command)
# and calls it; no argparse.Namespace leaves this file.


def _inputs(args: argparse.Namespace):
    from agents.workflow import Inputs

    return Inputs(profile=args.profile, traces=args.traces, seed=args.seed)


def _experiment(args: argparse.Namespace):
    """The ``Experiment`` of a ``run`` or ``train`` command (the SB3 validation cadence follows ``--timesteps``)."""
    from agents.training import TrainConfig, default_bandwidth_scales
    from agents.workflow import Experiment, run_warm_start

    framework = getattr(args, "framework", "sb3")  # ``run`` has no --framework: the main job is SB3
    given = args.train_bandwidth_scales
    scales = default_bandwidth_scales(framework) if given is None else tuple(given)
    deadlines = () if args.train_deadlines_ms is None else tuple(args.train_deadlines_ms)
    if framework == "rllib":
        train = TrainConfig(framework="rllib", algo="ppo", seed=args.seed, iterations=args.iterations,
                            num_env_runners=args.num_env_runners, bandwidth_scales=scales, deadlines_ms=deadlines,
                            curriculum_rounds=args.curriculum_rounds, action_mask=args.action_mask)
    else:
        warm = getattr(args, "warm_start", "none")  # only run has the flag: train has no tuned reference
        train = TrainConfig.sized(args.timesteps, algo=args.algo, n_envs=args.n_envs, seed=args.seed,
                                  bandwidth_scales=scales, deadlines_ms=deadlines,
                                  curriculum_rounds=args.curriculum_rounds,
                                  warm_start_per_scale=getattr(args, "warm_start_per_scale", False),
                                  action_mask=args.action_mask, residual=getattr(args, "residual", False),
                                  warm_start=run_warm_start(args.algo) if warm is None else warm)
    return Experiment(_inputs(args), train, out=args.out, seeds=None if args.seeds is None else tuple(args.seeds),
                      episodes=getattr(args, "episodes", 8), resume=args.resume, force=args.force,
                      progress=not args.no_progress, address=args.address,
                      tune=getattr(args, "tune", False), max_seeds=args.max_seeds, command=tuple(args.command))


def cmd_run(args: argparse.Namespace) -> int:
    """The main job: tune the heuristics, train, export, evaluate everything on held-out traces x scenes, report."""
    from agents.workflow import run_experiment

    summary = run_experiment(_experiment(args))
    print()
    print(summary.report.read_text())
    print(f"{len(summary.runs)} run(s) and the report written to {summary.out}/ in {summary.seconds:.0f} s")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a policy on the training split (stable-baselines3, or RLlib with --framework rllib)."""
    from agents.workflow import train_runs

    summary = train_runs(_experiment(args))
    if len(summary.runs) > 1:
        print(f"{len(summary.runs)} runs in {summary.out}/; compare them on the same episodes with: train_agent.py "
              "evaluate --runs " + " ".join(str(r.folder) for r in summary.runs))
    elif summary.runs and summary.runs[0].folder.joinpath("learning_curve.png").exists():
        print(f"learning curve {summary.runs[0].folder / 'learning_curve.png'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Tune the heuristics on the training split, evaluate the chosen policies on the held-out split, report."""
    from agents.workflow import Evaluation, evaluate_policies

    ev = Evaluation(_inputs(args), args.out, tuple(parse_names(args.policies)), tuple(args.runs), args.episodes,
                    args.test_traces, tuple(args.command))
    evaluate_policies(ev, warn=lambda w: print(w, file=sys.stderr))
    print((args.out / "report.md").read_text())
    print(f"wrote {args.out}/report.json, report.md and plots")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Accuracy and MB/frame of every policy against the bandwidth scale and the deadline (held-out split;
    heuristics re-tuned per point on training traces, learned runs as trained)."""
    from agents.workflow import Sweep, run_sweep_job

    sw = Sweep(_inputs(args), args.out, tuple(args.bandwidth_scales), tuple(args.deadlines_ms),
               tuple(parse_names(args.policies)), tuple(args.runs), args.episodes, args.max_evaluations,
               args.address, tuple(args.command))
    payload = run_sweep_job(sw)
    print((args.out / "sweep.md").read_text())
    print(f"wrote {args.out}/sweep.json, sweep.md and sweep_*.png in {payload['run']['total_seconds']:.0f} s")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a training run's best policy to ONNX for devices."""
    from agents.deploy import OnnxPolicy, export_run, write_bundle

    if args.bundle is not None:  # the device bundle: policy, int8 student, embedding and head arrays, manifest
        out = write_bundle(args.run_dir, args.bundle, flag="--bundle")
        print(f"wrote device bundle {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
        return 0
    path = export_run(args.run_dir, args.output, flag="-o/--output")
    pol = OnnxPolicy(path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.1f} kB): obs float32 [batch, {pol.dim}] -> logits, action; "
          f"actions {pol.action_names}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The edge server (agents.live.server) until SIGTERM."""
    from agents.live import ServerOptions, serve

    return serve(ServerOptions(host=args.host, port=args.port, profile=args.profile, cache_dir=args.cache_dir,
                               threads=args.threads, workers=args.workers, delay_ms=args.delay_ms, fault=args.fault))


def cmd_live(args: argparse.Namespace) -> int:
    """A bundle's policy live (server, paced uplink, real time) beside the simulator on the same episode."""
    import json

    from agents.live import LiveConfig, run_live

    params = json.loads(args.params) if args.params else {}
    report = run_live(LiveConfig(
        bundle=args.bundle, trace=args.trace, out=args.out, scenes=args.scenes, videos=tuple(args.video or ()),
        start_s=args.start_s, seconds=args.seconds, server=args.server, policy=args.policy, params=params,
        profile=args.profile, cache_dir=args.cache_dir, force=args.force, slowdown=args.slowdown,
        compute_scale=args.compute_scale, student_ms=args.student_ms))
    print((args.out / "live.md").read_text())
    return 0 if report["frames"] else 1


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
    from perception.__main__ import main as perception_main

    return perception_main(["build", *args.command[2:]])  # the same flags (add_build_args), parsed by their owner


def cmd_results(args: argparse.Namespace) -> int:
    """The README's numbers: record a job's output into results/, re-render README.md from results/, or check it."""
    from agents.workflow import results

    root = Path(__file__).resolve().parent
    readme, folder = args.readme or root / "README.md", args.results or root / "results"
    if args.record:
        import shlex

        name, source = args.record
        command = shlex.split(args.produced_by) if args.produced_by else None
        print(f"wrote {results.record(name, Path(source), folder, command)}")
    if args.update:
        changed = results.update_readme(readme, folder)
        print(f"{readme}: re-rendered {', '.join(changed)}" if changed else f"{readme}: up to date with {folder}/")
    if args.check or not (args.record or args.update):
        stale = results.check_readme(readme, folder)
        if stale:
            print(f"error: {readme}: blocks {', '.join(stale)} differ from what {folder}/ renders; run "
                  "`train_agent.py results --update` (after recording new results)", file=sys.stderr)
            return 1
        print(f"{readme} states what {folder}/ holds")
    return 0


def _ray_address(text: str) -> str:
    return text if text == "local" else host_port(text)


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from perception import DEFAULT_PROFILE

    p.add_argument("--profile", type=nonempty(Path), default=DEFAULT_PROFILE, help="frame profile .npz (default: "
                   "committed)")
    p.add_argument("--traces", type=nonempty(), default=None, help="trace file or folder, or 'embedded' for the "
                   "fitted generator (default: ../shared/traces, else the embedded generator)")
    p.add_argument("--seed", type=int_at_least(0), default=0)
    return p


def _training(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from agents.evaluation import MAX_SEEDS
    from agents.training import ALGOS, MIXED_BANDWIDTH_SCALES, TrainConfig

    defaults = TrainConfig()
    p.add_argument("--algo", choices=ALGOS["sb3"], default=defaults.algo, help="SB3 algorithm (default: %(default)s)")
    p.add_argument("--timesteps", type=int_at_least(1), default=defaults.timesteps,
                   help="SB3: environment steps (default: %(default)s)")
    p.add_argument("--n-envs", type=int_at_least(1), default=defaults.n_envs,
                   help="SB3: parallel envs in the batched env (default: %(default)s)")
    p.add_argument("--train-bandwidth-scales", type=argtype(parse_positive_list), default=None,
                   metavar="S1,S2,...", help="SB3: train (and pick the best model) on the training traces at each of "
                   "these throughput scales, one policy robust to slower and faster networks; 1 trains on the traces "
                   f"as recorded (default: {','.join(f'{s:g}' for s in MIXED_BANDWIDTH_SCALES)} for SB3, 1 for "
                   "RLlib, which trains on the traces as recorded only)")
    p.add_argument("--train-deadlines-ms", type=argtype(parse_positive_list), default=None, metavar="D1,D2,...",
                   help="SB3: train (and pick the best model) at each of these deadlines, one policy for a range of "
                   "deadlines; each gets an equal share of --n-envs and of the validation traces (default: the env's "
                   "deadline only)")
    p.add_argument("--curriculum-rounds", type=int_at_least(0), default=defaults.curriculum_rounds, metavar="R",
                   help="SB3 over several --train-bandwidth-scales, run only: a Genet-style curriculum. Training is cut "
                   "into R + 1 phases; after each but the last, the scale where the policy trails cachenet and "
                   "learned-greedy, re-tuned at that scale on the training side, by the most on validation is drawn "
                   "once more often (the re-tuning costs about the main job's own tuning of the two, per scale "
                   "other than 1). 0: the uniform mixture "
                   "(default: %(default)s)")
    p.add_argument("--action-mask", action="store_true",
                   help="SB3 ppo/a2c: give no probability to actions that cannot take effect (a send while the send "
                   "buffer is full, reuse with no cached answer), inside the network, so the exported policy masks too")
    p.add_argument("--out", type=nonempty(Path), default=None, help="run folder (default: runs/<algo>-seed<seed>); a "
                   "folder that holds a run needs --resume or --force")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint "
                   "(its settings must match this command's, except --timesteps / --iterations)")
    p.add_argument("--force", action="store_true", help="delete the run in --out and start a new one")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--address", type=_ray_address, default=None, help="the Ray cluster whose head is at HOST:PORT "
                   "(token authentication is handled), or 'local' for a local Ray on loopback: SB3 trains one Ray "
                   "task per seed there (run folders must be on storage every node sees), RLlib trains there "
                   "(default: SB3 trains here, one seed after another; RLlib on a local Ray)")
    p.add_argument("--max-seeds", type=int_at_least(1), default=MAX_SEEDS,
                   help="refuse more --seeds than this (default: %(default)s)")
    p.add_argument("--seeds", type=argtype(parse_seeds), default=None, metavar="S1,S2,...",
                   help="train one run per training seed (comma-separated, distinct, >= 0) into --out/seed<N> "
                   "(default --out: runs/<algo>-seeds<S1>-<S2>...). train: the runs only. run: also tunes the "
                   "heuristics once and writes one report in --out with per-seed results and the across-seed "
                   "mean, min/max and 95%% Student-t interval, every seed evaluated on the heuristics' episodes. "
                   "--seed still sets the traces (embedded generator), tuning and evaluation episodes; "
                   "--resume continues the seeds that have a run and starts the others")
    return p


def _compared(p: argparse.ArgumentParser, policies: str, policies_help: str, runs_help: str, episodes: int,
              out: str) -> argparse.ArgumentParser:
    """Flags of the commands that compare policies (evaluate, sweep)."""
    p.add_argument("--policies", default=policies, help=policies_help)
    p.add_argument("--runs", type=nonempty(Path), nargs="*", default=[], help=runs_help)
    p.add_argument("--episodes", type=int_at_least(1), default=episodes,
                   help="episodes per test trace (default: %(default)s)")
    p.add_argument("--out", type=nonempty(Path), default=Path(out), help="output folder (default: %(default)s)")
    return p


def build_parser() -> argparse.ArgumentParser:
    from agents.evaluation import MAX_EVALUATIONS
    from agents.training import FRAMEWORKS, TrainConfig
    from agents.workflow import SWEEP_POLICIES, WARM_START_FROM
    from perception.__main__ import add_build_args

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="train_agent.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")

    p = _training(_common(sub.add_parser("run", help="the whole main job on the embedded defaults (the default "
                                         "command)")))
    p.add_argument("--episodes", type=int_at_least(1), default=8,
                   help="evaluation episodes per test trace (default: %(default)s)")
    p.add_argument("--warm-start", choices=("none", *WARM_START_FROM), default=None,
                   help="behaviour-clone the network from this tuned reference (tuned first, on the training side) "
                   "before training starts; none trains from scratch (default: learned-greedy for ppo and a2c, none "
                   "for dqn)")
    p.add_argument("--warm-start-per-scale", action="store_true",
                   help="over several --train-bandwidth-scales: clone each speed's states from the --warm-start "
                   "reference re-tuned at that speed on the training side (a tuning like the main job's, per speed "
                   "other than 1), not from the one tuned at x1")
    p.add_argument("--residual", action="store_true",
                   help="with --warm-start learned-greedy: the actor's logits are learned-greedy's scores over a "
                   "temperature plus the network's correction, which starts at zero (training starts from exactly "
                   "learned-greedy's decisions)")

    p = _training(_common(sub.add_parser("train", help="train a policy (stable-baselines3 or RLlib) on the training "
                                         "split")))
    p.add_argument("--framework", choices=FRAMEWORKS, default=defaults.framework)
    p.add_argument("--num-env-runners", type=int_at_least(0), default=defaults.num_env_runners,
                   help="RLlib: EnvRunner processes (default: %(default)s)")
    p.add_argument("--iterations", type=int_at_least(1), default=defaults.iterations,
                   help=f"RLlib: training iterations of {defaults.train_batch:,} steps (default: %(default)s)")
    p.add_argument("--tune", action="store_true", help="RLlib: Ray Tune sweep over learning rate x entropy")

    p = _compared(_common(sub.add_parser("evaluate", help="evaluate policies (CBO, baselines, learned) on held-out "
                                         "traces")), "all",
                  "comma-separated names (local, offload@<px>, teacher, random, cbo, cbo+teacher, cbo-cond, "
                  "cachenet, oracle, link-oracle) or 'all' (default)",
                  "training run folders (SB3 or RLlib) to evaluate beside the baselines; runs whose config.json "
                  "differs only in the seed (e.g. OUT/seed0 OUT/seed1 of train --seeds) are one learned method: each "
                  "is reported as <algo>-seed<N> and the report adds their across-seed mean, min/max and 95%% "
                  "Student-t interval, and of their paired difference to the best heuristic", 4, "runs/evaluate")
    p.add_argument("--test-traces", type=nonempty(), default=None, metavar="PATH",
                   help="a trace file or folder (cooked or Mahimahi; .down skipped) whose every trace is a test "
                   "trace: heuristics are tuned on the training side of --traces (minus any copy of a test trace), "
                   "families are PATH's folders, held-out scenes as usual; a family of one trace is reported with "
                   "a warning")

    p = _compared(_common(sub.add_parser("sweep", help="accuracy and MB/frame of every policy against bandwidth "
                                         "scale and deadline (the standard offloading figure): sweep.md, "
                                         "sweep.json, one PNG per axis")), ",".join(SWEEP_POLICIES),
                  "comma-separated names or 'all' (default: %(default)s); heuristics are re-tuned on training traces "
                  "at every point", "training run folders, used as trained at every point (runs differing only in "
                  "seed are aggregated, as in evaluate)", 2, "runs/sweep")
    p.add_argument("--bandwidth-scales", type=argtype(parse_positive_list), default=[0.25, 0.5, 1.0, 2.0, 4.0],
                   metavar="X1,X2,...", help="factors on every trace's throughput, deadline at its default "
                   "(default: 0.25,0.5,1,2,4)")
    p.add_argument("--deadlines-ms", type=argtype(parse_positive_list), default=[100.0, 150.0, 200.0, 300.0, 400.0],
                   metavar="D1,D2,...", help="deadlines in ms, traces as recorded (default: 100,150,200,300,400)")
    p.add_argument("--address", type=_ray_address, default=None, help="a Ray cluster HOST:PORT, or 'local' for a "
                   "local Ray on loopback: one Ray task per sweep point (default: here, one point after another)")
    p.add_argument("--max-evaluations", type=int_at_least(1), default=MAX_EVALUATIONS,
                   help="refuse a sweep of more points x policies than this (default: %(default)s); a killed sweep "
                   "run again with the same --out and settings reuses its finished points")

    p = sub.add_parser("export", help="export a trained policy to ONNX for devices")
    p.add_argument("run_dir", type=nonempty(Path), help="training run folder (holds train.json and best_model.zip)")
    p.add_argument("-o", "--output", type=nonempty(Path), default=None, help="ONNX file (default: RUN_DIR/policy.onnx)")
    p.add_argument("--bundle", type=nonempty(Path), default=None, metavar="DIR", help="write a device bundle folder "
                   "instead (policy, int8 student, arrays, manifest; agents.deploy.DeviceController runs it)")

    add_build_args(sub.add_parser("profile", help="build a frame profile by running the real models on photos"))

    p = sub.add_parser("serve", help="the edge server: the profile's server model at each offload resolution and "
                       "its teacher over HTTP (POST /infer?action=NAME with a JPEG; GET /health)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8700, help="port (0: any free port; default: %(default)s)")
    p.add_argument("--profile", type=nonempty(Path), default=None, help="the frame profile whose models to serve "
                   "(default: committed); its weights' SHA-256 must match the installed weights")
    p.add_argument("--cache-dir", type=nonempty(Path), default=None, help="where the ONNX exports are cached "
                   "(default: $OFFLOAD_GYM_CACHE, else ~/.cache/offload-gym/onnx)")
    p.add_argument("--threads", type=int_at_least(1), default=2, help="ONNX Runtime threads per model (default: 2)")
    p.add_argument("--workers", type=int_at_least(1), default=1, help="requests computed at once (default: 1)")
    p.add_argument("--delay-ms", type=float, default=0.0, help="test hook: delay every answer (a slow server)")
    p.add_argument("--fault", choices=["none", "garbage"], default="none", help="test hook: 'garbage' answers "
                   "200 with a body that is not an answer")
    p = sub.add_parser("live", help="run a device bundle's policy live (edge server, trace-paced loopback uplink, "
                       "real time) beside the simulator on the same episode: OUT/live.json, live.md, timeline.png")
    p.add_argument("--bundle", type=nonempty(Path), required=True, help="device bundle folder (export --bundle)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenes", type=int_at_least(1), help="stream the first N test-side profile scenes, "
                     "re-rendered from their photos")
    src.add_argument("--video", type=nonempty(Path), nargs="+", help="stream decoded video files")
    p.add_argument("--trace", type=nonempty(Path), required=True, help="one trace file (cooked or Mahimahi)")
    p.add_argument("--start-s", type=float, default=0.0, help="offset into the trace (s; default 0)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: all frames)")
    p.add_argument("--server", default=None, help="URL of a running `serve` (default: start one on 127.0.0.1)")
    p.add_argument("--policy", default="bundle", choices=["bundle", "cachenet", "cbo-cond", "local"],
                   help="the bundle's policy.onnx (default) or a heuristic deployed through the same controller")
    p.add_argument("--params", default=None, help="the heuristic's parameters as JSON, e.g. a run's tuned ones")
    p.add_argument("--profile", type=nonempty(Path), default=None, help="the bundle's frame profile (default: "
                   "committed)")
    p.add_argument("--cache-dir", type=nonempty(Path), default=None, help="ONNX cache of the started server")
    p.add_argument("--out", type=nonempty(Path), required=True, help="report folder")
    p.add_argument("--slowdown", type=slowdown_value, default=1.0, help="time dilation: camera, link and round "
                   "trips run K times slower than the wall clock and device and server times count 1/K, emulating a "
                   "machine K times faster; 'auto': K = this machine's int8 student latency over the profile's, "
                   "emulating the machine the profile's latencies were measured on (default 1: real time)")
    p.add_argument("--compute-scale", type=float, default=1.0, help="a heuristic deployed and simulated with "
                   "the server's and teacher's compute times x this (e.g. measured under load; default 1)")
    p.add_argument("--student-ms", type=float, default=None, help="a heuristic deployed and simulated with this "
                   "device time before a decision (e.g. the measured device loop; default: the bundle's)")
    p.add_argument("--force", action="store_true", help="replace a live run already in --out")

    p = sub.add_parser("results", help="the README's numbers: record a job's output into results/, re-render "
                       "README.md's results blocks from results/ (--update) or check them (--check, the default)")
    p.add_argument("--record", nargs=2, metavar=("NAME", "OUTPUT"), default=None, help="copy a report folder, sweep "
                   "folder or JSON file into results/NAME.json with its command and the code's commit")
    p.add_argument("--command", dest="produced_by", default=None, help="with --record: the command line that produced OUTPUT, when the "
                   "output does not record it itself (e.g. 'python -m perception summary --json')")
    p.add_argument("--update", action="store_true", help="re-render README.md's blocks from results/")
    p.add_argument("--check", action="store_true", help="exit 1 when README.md differs from what results/ renders")
    p.add_argument("--readme", type=nonempty(Path), default=None, help="README file (default: the project's)")
    p.add_argument("--results", type=nonempty(Path), default=None, help="results folder (default: results/)")

    p = sub.add_parser("traces", help="per-family statistics of the bandwidth traces")
    p.add_argument("--traces", type=nonempty(), default=None,
                   help="trace file or folder, or 'embedded' (default: ../shared/traces)")
    return parser


HANDLERS = {"run": cmd_run, "train": cmd_train, "evaluate": cmd_evaluate, "sweep": cmd_sweep, "export": cmd_export,
            "profile": cmd_profile, "traces": cmd_traces, "results": cmd_results, "serve": cmd_serve, "live": cmd_live}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in {*HANDLERS, "-h", "--help"}:  # no subcommand: the main job, with any options given
        argv = ["run", *argv]
    args = parser.parse_args(argv)
    args.command = ["train_agent.py", *argv]  # as given (in-process callers pass argv; sys.argv is theirs)
    try:
        return HANDLERS[args.cmd](args)
    except (FileNotFoundError, ValueError, ConnectionError) as exc:  # bad input, cluster or results: the message says what
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
