#!/usr/bin/env python3
"""offload-gym's main entry point: profile models, inspect traces, train, evaluate and export offloading policies.

``python train_agent.py`` (no subcommand) runs the whole main job (``run``) on the embedded defaults: the committed
frame profile and the real traces in ../shared/traces (or, without ../shared, traces from the fitted generator).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

NOT_YET = {
    "train": "issue #7 (SB3 training) and #8 (RLlib)",
    "export": "issue #9 (ONNX export and device runtime)",
}
BASELINES = "local,offload@112,offload@160,offload@208,offload@256,teacher,random,cbo,cbo+teacher,oracle"


def _load_inputs(args: argparse.Namespace):
    """The frame profile and traces the job runs on, with a line saying where each came from."""
    from bandwidth_traces import default_traces
    from perception import FrameProfile

    profile = FrameProfile.load(args.profile)
    traces, origin = default_traces(args.traces, seed=args.seed)
    return profile, traces, origin


def cmd_run(args: argparse.Namespace) -> int:
    """The main job: load profile and traces, then train, evaluate and export (stages land with their issues)."""
    from bandwidth_traces import split
    from bandwidth_traces.stats import family_table, format_table

    profile, traces, origin = _load_inputs(args)
    train, test = split(traces, test_fraction=0.3, seed=args.seed)
    print(f"frame profile: {args.profile}")
    print(profile.summary(), end="")
    print(f"\ntraces: {len(traces)} from {origin}; split {len(train)} train / {len(test)} test (by file, seed {args.seed})")
    print(format_table(family_table(traces)), end="")
    print()
    for stage, where in NOT_YET.items():
        print(f"{stage}: not implemented yet ({where})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Tune CBO on the training split, evaluate the chosen policies on the held-out split, write the report."""
    from agents.report import write_report
    from agents.suite import Setup, evaluate_on_test, named_policies, trace_means

    profile, traces, origin = _load_inputs(args)
    setup = Setup.create(profile, traces)
    names = [n.strip() for n in args.policies.split(",") if n.strip()]
    policies, tuning = named_policies(setup, names, args.seed)
    results = evaluate_on_test(setup, policies, args.episodes, args.seed, progress=True)
    extra = {"traces": origin, "test_traces": len(setup.test_traces), "episodes_per_trace": args.episodes,
             "seed": args.seed, "profile": str(args.profile), "env_config": setup.config.to_dict(),
             "cbo_tuning": tuning}
    write_report(results, args.out, trace_means(setup.test_traces), setup.action_names(), extra)
    print((args.out / "report.md").read_text())
    print(f"wrote {args.out}/report.json, report.md and plots")
    return 0


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


def cmd_not_yet(args: argparse.Namespace) -> int:
    print(f"{args.cmd}: not implemented yet ({NOT_YET[args.cmd]})", file=sys.stderr)
    return 3


def build_parser() -> argparse.ArgumentParser:
    from perception import DEFAULT_PROFILE
    from perception.__main__ import add_build_args

    parser = argparse.ArgumentParser(prog="train_agent.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--profile", type=Path, default=DEFAULT_PROFILE, help="frame profile .npz (default: committed)")
        p.add_argument("--traces", default=None,
                       help="trace file or folder (default: ../shared/traces, else the embedded generator)")
        p.add_argument("--seed", type=int, default=0)
        return p

    common(sub.add_parser("run", help="the whole main job on the embedded defaults (the default command)"))
    common(sub.add_parser("train", help="train a policy with stable-baselines3 or RLlib"))
    p = common(sub.add_parser("evaluate", help="evaluate policies (CBO, baselines, learned) on held-out traces"))
    p.add_argument("--policies", default=BASELINES, help="comma-separated (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=4, help="episodes per test trace (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="report folder (default: %(default)s)")
    common(sub.add_parser("export", help="export a trained policy to ONNX for devices"))
    add_build_args(sub.add_parser("profile", help="build a frame profile by running the real models on photos"))
    p = sub.add_parser("traces", help="per-family statistics of the bandwidth traces")
    p.add_argument("--traces", default=None, help="trace file or folder, or 'embedded' (default: ../shared/traces)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"run", "train", "evaluate", "export", "profile", "traces", "-h", "--help"}
    if not argv or argv[0] not in commands:  # no subcommand: the main job, with any options given
        argv = ["run", *argv]
    args = parser.parse_args(argv)
    handlers = {"run": cmd_run, "traces": cmd_traces, "profile": cmd_profile, "evaluate": cmd_evaluate}
    try:
        return handlers.get(args.cmd, cmd_not_yet)(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
