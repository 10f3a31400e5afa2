"""The experiment: tune -> train -> evaluate -> report -> export, for one training seed or several.

``run_experiment`` is the main job (``train_agent.py run``): the heuristics are tuned once on training traces and
training scenes, one policy is trained per seed (each in its own run folder, exported to ONNX there and checked
against PyTorch), and every policy is evaluated on one set of held-out episodes, so each seed's difference to the
best heuristic is paired. One seed writes its report into its run folder; several write one report beside their
run folders with the across-seed mean and Student-t interval. ``train_runs`` is the same without tuning,
evaluation and report (``train_agent.py train``), for SB3 and RLlib.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agents.evaluation import EvalResult
from agents.policies import HEURISTICS, Policy
from agents.training import TrainConfig

from .inputs import Inputs, Loaded, load_inputs, print_tuning
from .record import JobRecord

# what ``run --warm-start`` may clone: the tuned deployable references (the main job tunes them before training)
WARM_START_FROM = HEURISTICS
# the main job's warm start: PPO cloned from learned-greedy, then trained, beat PPO from scratch at 600,000 steps on
# validation and held-out episodes for each of 3 seeds (benchmarks/rl_ablation.py, results/ablation-hp.json)
RUN_WARM_START = "learned-greedy"
# the references a curriculum (``TrainConfig.curriculum_rounds``) measures the policy's gap to, re-tuned at each
# training scale: the deployable references that were best at some sweep point (results/sweep.json)
CURRICULUM_REFERENCES = ("cachenet", "learned-greedy")


def run_warm_start(algo: str) -> str:
    """``run``'s default warm start for an SB3 algorithm: learned-greedy's for the feed-forward actor-critics, none
    for DQN and the recurrent PPO (whose warm start is not implemented)."""
    return RUN_WARM_START if algo in ("ppo", "a2c") else "none"


@dataclass(frozen=True)
class Experiment:
    """One experiment, as the CLI parsed it.

    ``train.seed`` is the training seed of a one-seed experiment; ``seeds`` (when given) trains one run per seed
    in ``out/seed<N>`` instead. ``out`` None means ``runs/<method>-seed<seed>`` (one seed) or
    ``runs/<method>-seeds<s1>-<s2>...``. ``resume`` continues runs that exist (seeds without one start), ``force``
    deletes them first. ``address`` joins a Ray cluster (``"local"``: a local Ray on loopback): RLlib trains there,
    and SB3 trains one Ray task per seed there (the run folders must be on storage every node sees); ``tune``
    (RLlib) runs a Tune sweep instead of one run.
    """

    inputs: Inputs
    train: TrainConfig
    out: Path | None = None
    seeds: tuple[int, ...] | None = None
    episodes: int = 8
    resume: bool = False
    force: bool = False
    progress: bool = True
    address: str | None = None
    tune: bool = False
    max_seeds: int | None = None  # None: agents.evaluation.MAX_SEEDS
    command: tuple[str, ...] = ()

    @property
    def base(self) -> Path:
        """The folder the experiment writes: the run folder (one seed) or the seeds folder."""
        if self.out is not None:
            return self.out
        if self.seeds is None:
            return Path("runs") / f"{self.train.method}-seed{self.train.seed}"
        return Path("runs") / f"{self.train.method}-seeds{'-'.join(map(str, self.seeds))}"

    def folders(self) -> list[tuple[int, Path]]:
        """(training seed, run folder) of every run."""
        if self.seeds is None:
            return [(self.train.seed, self.base)]
        return [(seed, self.base / f"seed{seed}") for seed in self.seeds]

    def policy_name(self, seed: int) -> str:
        """A trained policy's name in the report: the method (one seed) or ``<method>-seed<N>``."""
        return self.train.method if self.seeds is None else f"{self.train.method}-seed{seed}"


@dataclass(frozen=True)
class TrainedRun:
    """One training run of an experiment."""

    seed: int
    folder: Path
    name: str
    seconds: float
    timesteps: int
    best_val_accuracy: float
    onnx: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"seed": self.seed, "run": str(self.folder), "train_seconds": round(self.seconds, 1),
               "timesteps": self.timesteps, "best_val_accuracy": self.best_val_accuracy}
        return out if self.onnx is None else {**out, "onnx": str(self.onnx)}


@dataclass
class ExperimentSummary:
    """What an experiment produced: its folder, its runs, the tuned heuristics, the results and the report."""

    out: Path
    runs: list[TrainedRun]
    tuning: dict[str, Any] = field(default_factory=dict)
    results: dict[str, EvalResult] = field(default_factory=dict)
    record: JobRecord | None = None
    seconds: float = 0.0

    @property
    def report(self) -> Path:
        return self.out / "report.md"


def check_experiment(exp: Experiment) -> None:
    """Before any input is loaded: the folders are writable and hold runs exactly when they should, and the
    settings agree with each other (a Ray address and token are checked here too)."""
    from agents.evaluation import MAX_SEEDS, check_seed_count
    from agents.training import RunFolderError, check_cluster, check_not_run_dir, check_run_dir, holds_run
    from offload_common.files import check_output_dir

    if exp.resume and exp.force:
        raise RunFolderError("--resume and --force contradict each other: --resume continues the run(s) in --out, "
                             "--force deletes them")
    if exp.tune and exp.seeds is not None:
        raise ValueError("--seeds: not with --tune (a Tune sweep has its own trials); train the chosen settings "
                         "with --seeds afterwards")
    if exp.tune and exp.train.framework != "rllib":
        raise ValueError("--tune: a Ray Tune sweep trains with RLlib; add --framework rllib")
    if exp.train.warm_start not in ("none", *WARM_START_FROM):
        raise ValueError(f"--warm-start {exp.train.warm_start}: expected none or one of {', '.join(WARM_START_FROM)} "
                         "(a tuned reference the main job tunes before training)")
    base = check_output_dir(exp.base, "--out")
    if exp.tune:
        check_not_run_dir(base, "--out", "a Tune sweep")
    elif exp.seeds is None:
        check_run_dir(base, exp.resume, exp.force)
    else:
        check_seed_count(exp.seeds, exp.max_seeds or MAX_SEEDS)
        if holds_run(base):
            raise RunFolderError(f"--out {base} holds a single-seed training run; --seeds writes one run per seed "
                                 "into sub-folders seed<N> of --out: choose another --out")
        taken = [str(d) for _, d in exp.folders() if holds_run(d)]
        if taken and not (exp.resume or exp.force):
            raise RunFolderError(f"--out {base}: {', '.join(taken)} already hold(s) a training run; pass --resume to "
                                 "continue the seeds' runs (seeds without a run start) or --force to delete them and "
                                 "start again (or choose another --out)")
    if exp.address not in (None, "local"):
        check_cluster(exp.address)  # a wrong address or token fails here, before anything is loaded or written


def _prepare(exp: Experiment, loaded: Loaded, seed: int, folder: Path) -> tuple[TrainConfig, bool]:
    """A run folder ready to train into (config.json for a new run, the stored settings checked on resume); the
    run's training config (on resume its validation and checkpoint cadence are the run's own) and whether it
    resumes."""
    from agents.training import RunFolder, holds_run, prepare_run_dir

    resume = exp.resume and holds_run(folder)
    tcfg = exp.train.replace(seed=seed)
    config = {"command": list(exp.command), "framework": tcfg.framework, "profile": str(exp.inputs.profile),
              "traces": loaded.origin if tcfg.framework == "sb3" else loaded.source, "seed": seed,
              "env_config": loaded.setup.config.to_dict(), "train_config": tcfg.to_dict(),
              "train_traces": len(loaded.setup.train_traces), "test_traces": len(loaded.setup.test_traces)}
    stored = prepare_run_dir(folder, config, resume, exp.force and holds_run(folder),
                             lambda d: RunFolder(d, tcfg.framework).has_checkpoint())
    if stored is not None:  # keep the run's validation and checkpoint cadence; only the length changes
        tcfg = tcfg.replace(eval_freq=stored["train_config"]["eval_freq"],
                            checkpoint_freq=stored["train_config"]["checkpoint_freq"])
    return tcfg, resume


@dataclass(frozen=True)
class TrainingReferences:
    """The tuned policies an SB3 run trains with (``train_sb3``): the teacher its ``warm_start`` names (cloned
    before PPO starts), or with ``warm_start_per_scale`` that teacher re-tuned at each training scale; and the
    references re-tuned at each training scale that a curriculum measures its gaps to."""

    teacher: Policy | None = None
    scale_teachers: tuple[Policy, ...] | None = None
    curriculum: tuple[tuple[Policy, ...], ...] | None = None


def training_references(exp: Experiment, loaded: Loaded, policies: dict[str, Policy], tuning: dict[str, Any],
                        log: Callable[[str], None]) -> TrainingReferences:
    """What ``exp``'s training needs of the tuned ``policies`` (tuned at x1), with whatever it needs re-tuned at
    each training scale first (``scale_references``; recorded in ``tuning["scale_references"]``)."""
    from agents.evaluation import scale_references

    train = exp.train
    teacher = None if train.warm_start == "none" else policies[train.warm_start]
    names = list(dict.fromkeys([*(CURRICULUM_REFERENCES if train.curriculum_rounds else ()),
                                *((train.warm_start,) if train.warm_start_per_scale else ())]))
    if not names:
        return TrainingReferences(teacher)
    log(f"{', '.join(names)} re-tuned at each training scale on the training side (for the "
        + " and ".join(w for w, on in (("curriculum", train.curriculum_rounds), ("warm start",
                                                                               train.warm_start_per_scale)) if on)
        + ")")
    per_scale, tuning["scale_references"] = scale_references(loaded.setup, train.bandwidth_scales, names,
                                                             exp.inputs.seed, tuned=policies, log=log)
    return TrainingReferences(
        None if train.warm_start_per_scale else teacher,
        tuple(p[train.warm_start] for p in per_scale) if train.warm_start_per_scale else None,
        tuple(tuple(p[n] for n in CURRICULUM_REFERENCES) for p in per_scale) if train.curriculum_rounds else None)


def _train_one(exp: Experiment, loaded: Loaded, seed: int, folder: Path, log: Callable[[str], None],
               refs: TrainingReferences = TrainingReferences()) -> TrainedRun:
    """Train one seed's run (SB3 or RLlib) into ``folder`` with the tuned policies ``refs`` (SB3)."""
    from agents.training import train_rllib, train_sb3

    tcfg, resume = _prepare(exp, loaded, seed, folder)
    if tcfg.framework == "rllib":
        log(f"seed {seed}: {'resuming' if resume else 'training'} RLlib {tcfg.algo.upper()} for {tcfg.iterations} "
            f"iterations -> {folder}")
        address = None if exp.address == "local" else exp.address
        info = train_rllib(loaded.setup, folder, str(exp.inputs.profile), loaded.source, tcfg, address, resume=resume)
        log(f"ray.init {info['ray_init_s']} s, build {info['build_s']} s, {info['seconds_per_iteration']:.2f} s per "
            f"iteration; best validation accuracy {info['best_val_accuracy']:.4f}; checkpoint in {folder}/checkpoint")
        seconds = sum(h["seconds"] for h in info["history"])
        steps = max((h["env_steps"] for h in info["history"]), default=0)
        return TrainedRun(seed, folder, exp.policy_name(seed), seconds, steps, info["best_val_accuracy"])
    log(f"seed {seed}: {'resuming' if resume else 'training'} {tcfg.algo.upper()} for {tcfg.timesteps:,} steps "
        f"-> {folder}")
    result = train_sb3(loaded.setup, folder, tcfg, resume=resume, progress=exp.progress, teacher=refs.teacher,
                       log=log, curriculum=refs.curriculum, scale_teachers=refs.scale_teachers)
    best = max(h["val_accuracy"] for h in result.history)
    log(f"seed {seed}: trained {result.timesteps:,} steps in {result.seconds:.0f} s; best validation accuracy "
        f"{best:.4f} ({result.best_path})")
    return TrainedRun(seed, folder, exp.policy_name(seed), result.seconds, result.timesteps, best)


def _train_on_worker(exp: Experiment, refs: TrainingReferences, item: tuple[int, Path]) -> TrainedRun:
    """One seed's training as a Ray task: the worker loads the inputs itself, by the same rule as the driver (the
    tuned policies the training uses travel with the task)."""
    seed, folder = item
    return _train_one(exp, load_inputs(exp.inputs), seed, folder, print, refs)


def _train_all(exp: Experiment, loaded: Loaded, log: Callable[[str], None],
               refs: TrainingReferences = TrainingReferences()) -> list[TrainedRun]:
    """Every seed's run: one after another here, or (SB3 with ``address``) one Ray task per seed, which gives the
    same runs (training depends on the seed and settings only; each task uses ``train.threads`` torch threads as
    the local loop does)."""
    if exp.address is None or exp.train.framework == "rllib":
        return [_train_one(exp, loaded, seed, folder, log, refs) for seed, folder in exp.folders()]
    import functools

    from agents.training import map_on_ray

    items = [(seed, folder.resolve()) for seed, folder in exp.folders()]
    log(f"training {len(items)} run(s) as Ray tasks on {exp.address} ({exp.train.threads} CPUs each)")
    exp = replace(exp, inputs=replace(exp.inputs, profile=Path(exp.inputs.profile).resolve()))
    return map_on_ray(functools.partial(_train_on_worker, exp, refs), items,
                      None if exp.address == "local" else exp.address, num_cpus=exp.train.threads,
                      describe=lambda item: f"seed {item[0]} ({item[1]})")


def train_runs(exp: Experiment, log: Callable[[str], None] = print) -> ExperimentSummary:
    """``train``: one training run per seed (SB3 or RLlib), no tuning, evaluation or report; with ``tune`` a Ray
    Tune sweep (RLlib) into ``exp.base``."""
    t0 = time.time()
    if exp.train.warm_start != "none":
        raise ValueError(f"--warm-start {exp.train.warm_start}: train has no tuned references to clone; use `run "
                         f"--warm-start {exp.train.warm_start}`, which tunes them on the training side first")
    if exp.train.curriculum_rounds:
        raise ValueError(f"--curriculum-rounds {exp.train.curriculum_rounds}: train tunes no references to measure "
                         "the curriculum's gaps against; use `run --curriculum-rounds`, which re-tunes them at each "
                         "training scale first")
    check_experiment(exp)
    loaded = load_inputs(exp.inputs)
    if exp.tune:
        from agents.training import tune_sweep

        res = tune_sweep(loaded.setup, exp.base, str(exp.inputs.profile), loaded.source, exp.train, exp.address)
        for row in res["trials"]:
            log(str(row))
        return ExperimentSummary(exp.base, [], seconds=time.time() - t0)
    return ExperimentSummary(exp.base, _train_all(exp, loaded, log), seconds=time.time() - t0)


def export_and_check(run_dir: Path, loaded: Loaded) -> Path:
    """Export a run's best model to ONNX (``run_dir/policy.onnx``) and check that ONNX Runtime picks the same
    greedy action as PyTorch on held-out observations."""
    import numpy as np

    from agents.deploy import OnnxPolicy, export_run
    from agents.evaluation import make_episodes, rollout
    from agents.policies import RandomPolicy
    from agents.training import load_run_policy

    setup = loaded.setup
    path = export_run(run_dir)
    env = setup.factory("test")(len(setup.test_traces), setup.test_traces)
    rollout(RandomPolicy(len(env.action_names), seed=1), env, make_episodes(env, 1, seed=7))
    obs = env.observe()
    want = load_run_policy(run_dir).logits(obs).argmax(1)
    got = OnnxPolicy(path).act(obs)
    if not np.array_equal(want, got):
        raise RuntimeError(f"exported policy disagrees with PyTorch on {(want != got).sum()} observations")
    return path


def run_experiment(exp: Experiment, log: Callable[[str], None] = print) -> ExperimentSummary:
    """The main job for one seed or several: tune, train, export, evaluate, report (see the module docstring)."""
    from agents.evaluation import (
        SEED_INTERVAL_NOTE,
        SeedGroup,
        across_seeds,
        best_heuristic,
        evaluate_on_test,
        named_policies,
        seeds_markdown,
        trace_means,
        write_report,
    )
    from agents.training import load_run_policy

    from .inputs import all_policy_names

    if exp.train.framework != "sb3" or exp.tune:
        raise ValueError("run: the main job trains with stable-baselines3; train RLlib runs with `train --framework "
                         "rllib` and compare them with `evaluate --runs`")
    if exp.train.algo == "recurrent-ppo":
        raise ValueError("run --algo recurrent-ppo: the main job exports its policy to ONNX, which takes feed-forward "
                         "policies; train a recurrent policy with `train --algo recurrent-ppo` and compare it with "
                         "`evaluate --runs`")
    t0 = time.time()
    check_experiment(exp)
    loaded = load_inputs(exp.inputs)
    seeds_note = "" if exp.seeds is None else f"; training seeds {', '.join(map(str, exp.seeds))}"
    log(loaded.describe(seeds_note))
    policies, tuning = named_policies(loaded.setup, all_policy_names(loaded.setup), exp.inputs.seed)
    print_tuning(tuning, log)
    refs = training_references(exp, loaded, policies, tuning, log)
    runs = []
    for run in _train_all(exp, loaded, log, refs):
        run = replace(run, onnx=export_and_check(run.folder, loaded))
        log(f"seed {run.seed}: policy exported to {run.onnx} (ONNX Runtime matches PyTorch on held-out observations)")
        policies[run.name] = load_run_policy(run.folder, run.name)
        runs.append(run)
    setup = loaded.setup
    results = evaluate_on_test(setup, policies, exp.episodes, exp.inputs.seed, progress=exp.progress)
    record = JobRecord.of(loaded, exp.episodes, tuning, command=exp.command, runs=runs,
                          total_seconds=time.time() - t0)
    if exp.seeds is None:
        write_report(results, exp.base, trace_means(setup.test_traces), setup.action_names(), record.to_dict())
    else:
        group = SeedGroup(exp.train.method, tuple(exp.seeds), tuple(r.name for r in runs))
        summary = {group.name: across_seeds(results, group, best_heuristic(results))}
        write_report(results, exp.base, trace_means(setup.test_traces), setup.action_names(), record.to_dict(),
                     entries=summary, meta={"across_seeds": summary, "seed_interval": SEED_INTERVAL_NOTE},
                     sections=[seeds_markdown(summary)])
    return ExperimentSummary(exp.base, runs, tuning, results, record, time.time() - t0)
