"""Comparing policies that exist: ``evaluate`` (named policies and learned runs on the held-out split, optionally
on test traces from another data set) and ``sweep`` (every policy against bandwidth scale and deadline)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .inputs import Inputs, load_inputs, resolve_policies
from .record import JobRecord
from .runs import load_runs, training_conditions

SWEEP_POLICIES = ("local", "cbo", "cbo+teacher", "cbo-cond", "cachenet", "learned-greedy", "oracle")


def _check_names(names: Sequence[str], runs: Sequence[Path], flag: str, default: str) -> None:
    if not names and not runs:
        raise ValueError(f"{flag}: no policy names; expected 'all' or a comma-separated list ({default}), or "
                         "training runs with --runs")


@dataclass(frozen=True)
class Evaluation:
    """``evaluate``: ``policies`` by name (``["all"]`` for every one) and learned ``runs``, on ``episodes`` per test
    trace; ``test_traces`` (a path) makes every trace there a test trace (heuristics tuned on ``--traces``'
    training side)."""

    inputs: Inputs
    out: Path
    policies: tuple[str, ...] = ("all",)
    runs: tuple[Path, ...] = ()
    episodes: int = 4
    test_traces: str | None = None
    command: tuple[str, ...] = ()


def evaluate_policies(ev: Evaluation, log: Callable[[str], None] = print,
                      warn: Callable[[str], None] = print) -> dict[str, Any]:
    """Tune the named heuristics on training data, evaluate them and the runs on the held-out episodes, write the
    report into ``ev.out``; returns report.json's payload."""
    from agents.evaluation import (
        SEED_INTERVAL_NOTE,
        across_seeds,
        best_heuristic,
        cross_setup,
        describe_test_side,
        evaluate_on_test,
        load_test_traces,
        mark_family_warnings,
        named_policies,
        runs_trained_on,
        seeds_markdown,
        single_trace_families,
        trace_means,
        write_report,
    )
    from agents.training import check_not_run_dir

    t0 = time.time()
    check_not_run_dir(ev.out, "--out", "an evaluation report")
    _check_names(ev.policies, ev.runs, "--policies", "e.g. local,cbo,oracle")
    test = load_test_traces(ev.test_traces) if ev.test_traces is not None else None  # a bad path fails at once
    loaded = load_inputs(ev.inputs)
    setup = loaded.setup
    names = resolve_policies(ev.policies, setup)
    learned, groups = load_runs(ev.runs)  # before tuning: a bad run folder fails at once
    removed: list[str] = []
    if test is not None:
        setup, removed = cross_setup(setup, test)
    policies, tuning = named_policies(setup, names, ev.inputs.seed)
    policies.update(learned)
    results = evaluate_on_test(setup, policies, ev.episodes, ev.inputs.seed, progress=True)
    warnings: list[str] = []
    meta: dict[str, Any] = {}
    if test is not None:
        family_warnings = single_trace_families(setup.test_traces)
        mark_family_warnings(results, family_warnings)
        warnings += [*family_warnings.values(), *runs_trained_on(ev.runs, setup.test_traces)]
        meta["test_side"] = describe_test_side(ev.test_traces, setup.test_traces, removed)
        if removed:
            log(f"note: {len(removed)} training trace(s) of --traces are copies of test traces and were not tuned "
                f"on: {', '.join(removed[:5])}{' ...' if len(removed) > 5 else ''}")
    for w in warnings:
        warn(f"warning: {w}")
    ref = best_heuristic(results)
    summaries = {g.name: across_seeds(results, g, ref) for g in groups}
    if summaries:
        meta.update({"across_seeds": summaries, "seed_interval": SEED_INTERVAL_NOTE})
    record = JobRecord.of(loaded, ev.episodes, tuning, command=ev.command, compared_runs=ev.runs,
                          test_traces_path=ev.test_traces, total_seconds=time.time() - t0, setup=setup)
    return write_report(results, ev.out, trace_means(setup.test_traces), setup.action_names(), record.to_dict(),
                        warnings=warnings, entries=summaries, meta=meta,
                        sections=[seeds_markdown(summaries)] if summaries else [])


@dataclass(frozen=True)
class Sweep:
    """``sweep``: ``policies`` (re-tuned at every point) and learned ``runs`` (as trained) at every bandwidth scale
    (deadline at its default) and every deadline (traces as recorded), ``episodes`` per held-out trace."""

    inputs: Inputs
    out: Path
    bandwidth_scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    deadlines_ms: tuple[float, ...] = (100.0, 150.0, 200.0, 300.0, 400.0)
    policies: tuple[str, ...] = SWEEP_POLICIES
    runs: tuple[Path, ...] = ()
    episodes: int = 2
    max_evaluations: int | None = None  # None: agents.evaluation.MAX_EVALUATIONS
    address: str | None = None  # a Ray cluster HOST:PORT or "local": one Ray task per sweep point
    command: tuple[str, ...] = ()


def _sweep_point_on_worker(sw: Sweep, point: Any) -> tuple[list, dict]:
    """One sweep point as a Ray task: the worker loads the inputs and runs by the same rules as the driver."""
    from agents.evaluation import sweep_point

    loaded = load_inputs(sw.inputs)
    setup = loaded.setup
    learned, groups = load_runs(sw.runs)
    # tuned in the task's own process: a Ray task holds one CPU, and Ray runs as many tasks as there are CPUs
    return sweep_point(setup.profile, setup.train_traces, setup.test_traces, setup.config,
                       resolve_policies(sw.policies, setup), learned, groups, point, sw.episodes, sw.inputs.seed,
                       tune_workers=1)


def _ray_mapper(sw: Sweep) -> Callable[[list], list] | None:
    """With ``sw.address``: compute sweep points as one Ray task each (paths made absolute for the workers)."""
    if sw.address is None:
        return None
    import functools
    from dataclasses import replace

    from agents.training import map_on_ray

    sw = replace(sw, inputs=replace(sw.inputs, profile=Path(sw.inputs.profile).resolve()),
                 runs=tuple(Path(r).resolve() for r in sw.runs))
    address = None if sw.address == "local" else sw.address
    return lambda points: map_on_ray(functools.partial(_sweep_point_on_worker, sw), points, address,
                                     describe=lambda p: f"bandwidth x{p.bandwidth_scale:g}, deadline {p.deadline_ms:g} ms")


def run_sweep_job(sw: Sweep, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the sweep and write sweep.json, sweep.md and one PNG per axis into ``sw.out``; returns the payload."""
    from agents.evaluation import MAX_EVALUATIONS, SWEEP_PARTIAL, run_sweep, write_sweep
    from agents.training import check_not_run_dir

    t0 = time.time()
    check_not_run_dir(sw.out, "--out", "a sweep")
    _check_names(sw.policies, sw.runs, "--policies", f"default {','.join(SWEEP_POLICIES)}")
    loaded = load_inputs(sw.inputs)
    setup = loaded.setup
    names = resolve_policies(sw.policies, setup)
    learned, groups = load_runs(sw.runs)
    log(f"sweep on {len(setup.test_traces)} held-out traces x {sw.episodes} episode(s): bandwidth x "
        f"{', '.join(f'{v:g}' for v in sw.bandwidth_scales)}; deadline "
        f"{', '.join(f'{v:g}' for v in sw.deadlines_ms)} ms; heuristics re-tuned at every point")
    payload = run_sweep(setup.profile, setup.train_traces, setup.test_traces, setup.config, names, learned, groups,
                        sw.bandwidth_scales, sw.deadlines_ms, sw.episodes, sw.inputs.seed, log=log,
                        max_evaluations=sw.max_evaluations or MAX_EVALUATIONS, partial=sw.out / SWEEP_PARTIAL,
                        map_points=_ray_mapper(sw))
    record = JobRecord.of(loaded, sw.episodes, {}, command=sw.command, compared_runs=sw.runs,
                          total_seconds=time.time() - t0)
    payload["trained_at"] = training_conditions(sw.runs)
    write_sweep(payload, sw.out, record.to_dict())
    return {**payload, "run": record.to_dict()}
