"""Wiring shared by the CLI and the main job: splits, env factories, tuned heuristics and the named policies."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.policies import (
    HEURISTICS,
    TUNED_REFERENCES,
    Policy,
    baseline_policies,
    profiled_accuracy,
    tune_cachenet,
    tune_cbo,
    tune_cbo_cond,
    tune_clairvoyant,
    tune_learned_greedy,
)
from bandwidth_traces import Trace
from bandwidth_traces import split as split_traces
from envs import EnvConfig, OffloadVectorEnv, select_profile, select_traces
from offload_common import observation
from perception import FrameProfile

from .rollout import EvalResult, evaluate, evaluate_many, make_episodes
from .scoring import TrainingScorer, default_workers


@dataclass
class Setup:
    """One experiment's inputs: the profile, every trace, the env config, and both sides of both splits."""

    profile: FrameProfile
    config: EnvConfig
    train_traces: list[Trace]
    test_traces: list[Trace]

    @classmethod
    def create(cls, profile: FrameProfile, traces: Sequence[Trace], config: EnvConfig = EnvConfig()) -> Setup:
        return cls(profile, config, select_traces(traces, config.replace(trace_split="train")),
                   select_traces(traces, config.replace(trace_split="test")))

    def env_config(self, split: str) -> EnvConfig:
        """Config of an env over pre-selected traces of one side (``train``/``test``) of the scene split."""
        return self.config.replace(trace_split="all", profile_split=split, skip_downlink=False, trace_families=None)

    def factory(self, split: str) -> Callable[[int, Sequence[Trace]], OffloadVectorEnv]:
        cfg = self.env_config(split)
        return lambda n, traces: OffloadVectorEnv(n, self.profile, traces, cfg)

    def action_names(self) -> list[str]:
        return observation.action_names(self.profile.resolutions)


def deal(items: Sequence[Any], hands: int) -> list[list[Any]]:
    """``items`` dealt round-robin into ``hands`` lists (hand k: items k, k + hands, ...), the order kept."""
    return [list(items[k::hands]) for k in range(hands)]


def condition_configs(config: EnvConfig, deadlines_ms: Sequence[float] = ()) -> list[EnvConfig]:
    """``config`` at each of ``deadlines_ms``; ``()`` is ``config`` itself (its own deadline only)."""
    return [config.replace(deadline_ms=float(d)) for d in deadlines_ms] or [config]


@dataclass
class ValidationPart:
    """The validation episodes at one deadline: its config, traces and env, and the fixed episodes."""

    config: EnvConfig
    traces: list[Trace]
    env: OffloadVectorEnv
    episodes: Any


@dataclass
class Validation:
    """The share of training traces held out from fitting, with fixed episodes (training scenes) to score on.

    SB3 and RLlib training both use it, so both frameworks pick their best model on the same episodes.
    """

    fit_traces: list[Trace]
    val_traces: list[Trace]
    parts: list[ValidationPart]
    # the throughput scales both sides hold every file at, scale-major (``create``); (1.0,): as recorded
    scales: tuple[float, ...] = (1.0,)

    @classmethod
    def create(cls, setup: Setup, val_fraction: float, seed: int, bandwidth_scales: Sequence[float] = (1.0,),
               deadlines_ms: Sequence[float] = (), episodes: int = 1) -> Validation:
        """Split the training traces into fitting and validation files; with ``bandwidth_scales`` other than
        ``(1.0,)`` both sides hold every file at each throughput scale (``Trace.scaled``), so a policy trained for a
        range of network speeds is also picked on that range. With ``deadlines_ms`` the validation traces are dealt
        round-robin over those deadlines (one episode each, as without), so a policy trained for a range of
        deadlines is picked on that range at the same validation cost. ``episodes`` per validation trace (the
        first of each is the episode a single one would be): more, for a less noisy pick of the best model."""
        if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
            raise ValueError(f"validation: episodes={episodes!r}: expected an int >= 1 per validation trace")
        fit, val = split_traces(setup.train_traces, val_fraction, seed + 1)
        if tuple(bandwidth_scales) != (1.0,):
            fit = [t.scaled(s) for s in bandwidth_scales for t in fit]
            val = [t.scaled(s) for s in bandwidth_scales for t in val]
        configs = condition_configs(setup.env_config("train"), deadlines_ms)
        if len(val) < len(configs):
            raise ValueError(f"validation: {len(val)} validation trace(s) cannot cover {len(configs)} deadlines "
                             f"{list(deadlines_ms)} (one trace each at least); give more traces or fewer deadlines")
        parts = []
        for cfg, traces in zip(configs, deal(val, len(configs))):
            env = OffloadVectorEnv(len(traces) * episodes, setup.profile, traces, cfg)
            parts.append(ValidationPart(cfg, traces, env, make_episodes(env, episodes, seed + 2)))
        return cls(fit, val, parts, tuple(float(s) for s in bandwidth_scales))

    def fit_weighted(self, weights: Sequence[int]) -> list[Trace]:
        """The fitting traces with scale k's files repeated ``weights[k]`` times (a training distribution that
        draws scale k's files ``weights[k]`` times as often; all ones is ``fit_traces``)."""
        if len(weights) != len(self.scales) or not all(isinstance(w, int) and w >= 0 for w in weights) \
                or not any(weights):
            raise ValueError(f"weights {list(weights)}: expected {len(self.scales)} integers >= 0 (one per scale "
                             f"{list(self.scales)}), not all 0")
        per = len(self.fit_traces) // len(self.scales)
        return [t for k, w in enumerate(weights) for _ in range(w) for t in self.fit_traces[k * per:(k + 1) * per]]

    def accuracy_by_scale(self, policy: Policy) -> list[float]:
        """Accuracy over the validation episodes at each of ``scales`` (one deadline only)."""
        if len(self.parts) != 1:
            raise ValueError(f"accuracy_by_scale: the validation is dealt over {len(self.parts)} deadlines; "
                             "per-scale accuracy is defined for one deadline")
        part = self.parts[0]
        res = evaluate(policy, lambda n, t: part.env, part.traces, 1, episode_set=part.episodes)
        per = len(self.val_traces) // len(self.scales)
        episode_acc = np.asarray(res.metrics["all"]["episode_accuracy"])
        block = np.asarray(part.episodes.trace) // per
        return [float(episode_acc[block == k].mean()) for k in range(len(self.scales))]

    def accuracy(self, policy: Policy) -> float:
        """Accuracy over every validation episode (pooled over the deadlines, each episode of equal length)."""
        if len(self.parts) == 1:  # one deadline: that env's own accuracy
            part = self.parts[0]
            return evaluate(policy, lambda n, t: part.env, part.traces, 1, episode_set=part.episodes).metrics[
                "all"]["accuracy"]
        total = 0.0
        for part in self.parts:
            res = evaluate(policy, lambda n, t, env=part.env: env, part.traces, 1, episode_set=part.episodes)
            total += res.metrics["all"]["accuracy"] * len(part.traces)
        return total / len(self.val_traces)


# Episodes per training trace each heuristic is tuned on. One (48k decisions) left the grid searches choosing among
# near-ties by noise: tuned on 4, cachenet scores 0.742 held out instead of 0.724 (measured on the default inputs).
TUNE_EPISODES = 4


def training_scorer(setup: Setup, seed: int = 0, episodes: int = TUNE_EPISODES,
                    workers: int = 1) -> tuple[TrainingScorer, str]:
    """Mean accuracy of a policy on fixed episodes over the training traces x training scenes (the tuning set),
    and what it is scored on. With ``workers > 1`` the scores are computed on that many worker processes
    (``agents.evaluation.scoring``: the same scores) and the scorer must be closed (``with scorer: ...``)."""
    return (TrainingScorer(setup, seed, episodes, workers),
            f"{len(setup.train_traces)} training traces x {episodes} episode(s), training scenes")


def tuned_heuristics(setup: Setup, names: Sequence[str] = HEURISTICS, seed: int = 0, episodes: int = TUNE_EPISODES,
                     workers: int | None = None) -> tuple[dict[str, Policy], dict[str, Any]]:
    """The named heuristics, each tuned by grid search on training traces and training scenes only.

    cbo and cbo+teacher: (tau, margin), then tau_teacher; cbo-cond: (tau, margin, use_teacher); cachenet: the
    reuse rule, the refresh knobs and (tau, margin) on top of the tuned cbo-cond; learned-greedy: its model fitted
    on the tuned cachenet's (epsilon-random) rollouts over training traces x training scenes, then its bonuses.
    Also the tuned reference link-oracle (``agents.clairvoyant``: cachenet's rule with the true in-time test),
    tuned the same way from the tuned cachenet's point. Returns the policies and, per name, its parameters, grid,
    tuning time and the grid edges its optimum hit (``grid_edges``, also collected under ``info["grid_edges"]``).

    The grid points are scored on ``workers`` processes (default ``default_workers()``: 2 on a machine with 2
    cores or more; 1 scores them in this process), recorded as ``info["workers"]``; the tuned policies and every
    grid row are the same for any number of workers.
    """
    workers = default_workers() if workers is None else workers
    score, tuned_on = training_scorer(setup, seed, episodes, workers=workers)
    with score:  # shuts the worker processes down however the tuning ends
        return _tune(setup, names, seed, score, {"tuned_on": tuned_on, "workers": workers})


def _tune(setup: Setup, names: Sequence[str], seed: int, score: TrainingScorer,
          info: dict[str, Any]) -> tuple[dict[str, Policy], dict[str, Any]]:
    out: dict[str, Policy] = {}

    def record(name: str, pol: Policy, grid: list, t0: float, **more: Any) -> None:
        out[name] = pol
        info[name] = {"params": pol.describe(), "grid": grid, "seconds": round(time.time() - t0, 1),
                      "grid_edges": list(getattr(pol, "tuning_edges", [])), **more}

    if {"cbo", "cbo+teacher"} & set(names):
        t0 = time.time()
        a_r, a_t = profiled_accuracy(select_profile(setup.profile, setup.config.replace(profile_split="train")))
        cbo, cbot, grid = tune_cbo(score, a_r, a_t)
        record("cbo", cbo, grid, t0)
        out["cbo+teacher"] = cbot
        info["cbo+teacher"] = {"params": cbot.describe(), "grid_edges": list(getattr(cbot, "tuning_edges", []))}
    needs_cachenet = {"cachenet", "link-oracle", "learned-greedy"}
    if ({"cbo-cond"} | needs_cachenet) & set(names):
        t0 = time.time()
        cond, grid = tune_cbo_cond(score)
        record("cbo-cond", cond, grid, t0)
        if needs_cachenet & set(names):
            t0 = time.time()
            cache, grid = tune_cachenet(score, cond)
            record("cachenet", cache, grid, t0)
            if "link-oracle" in names:
                t0 = time.time()
                link, grid = tune_clairvoyant(score, cache)
                record("link-oracle", link, grid, t0)
            if "learned-greedy" in names:
                from .greedy import fit_learned_greedy

                t0 = time.time()
                model = fit_learned_greedy(setup, cache, seed)
                greedy, grid = tune_learned_greedy(score, model)
                record("learned-greedy", greedy, grid, t0)
    info["grid_edges"] = {n: info[n]["grid_edges"] for n in out if info.get(n, {}).get("grid_edges")}
    return {n: out[n] for n in names if n in out}, info


def scale_references(setup: Setup, scales: Sequence[float], names: Sequence[str], seed: int = 0,
                     tuned: dict[str, Policy] | None = None, log: Callable[[str], None] | None = None
                     ) -> tuple[list[dict[str, Policy]], dict[str, Any]]:
    """The references ``names`` re-tuned on the training traces at each throughput scale (as a sweep point
    re-tunes them; ``tuned``: those already tuned at x1, used there as they are). Returns, per scale, the policies
    by name and, per scale, what was tuned (parameters, seconds)."""
    out: list[dict[str, Policy]] = []
    info: dict[str, Any] = {}
    for s in scales:
        t0 = time.time()
        if float(s) == 1.0 and tuned is not None and all(n in tuned for n in names):
            out.append({n: tuned[n] for n in names})
            info[f"x{s:g}"] = {"tuned": "as the run's references (x1)"}
            continue
        scaled = Setup(setup.profile, setup.config, [t.scaled(s) for t in setup.train_traces],
                       [t.scaled(s) for t in setup.test_traces])
        pols, tuning = named_policies(scaled, list(names), seed)
        out.append({n: pols[n] for n in names})
        info[f"x{s:g}"] = {"params": {n: tuning[n]["params"] for n in names},
                           "seconds": round(time.time() - t0, 1)}
        if log is not None:
            log(f"  {', '.join(names)} re-tuned at bandwidth x{s:g} in {info[f'x{s:g}']['seconds']} s")
    return out, info


def named_policies(setup: Setup, names: Sequence[str], seed: int = 0, tune_episodes: int = TUNE_EPISODES,
                   tune_workers: int | None = None) -> tuple[dict[str, Policy], dict[str, Any]]:
    """Policies by name: one per action (local, offload@<r>, teacher, reuse), random, oracle, the tuned
    heuristics cbo, cbo+teacher, cbo-cond, cachenet, the one-step learned baseline learned-greedy and the tuned
    reference link-oracle (tuned, and learned-greedy fitted, on training data only; on ``tune_workers``
    processes, ``tuned_heuristics``)."""
    available = baseline_policies(setup.action_names(), seed)
    tunable = (*HEURISTICS, *TUNED_REFERENCES)
    unknown = [n for n in names if n not in available and n not in tunable]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; available: {sorted(available) + list(tunable)}")
    tuned, tuning = tuned_heuristics(setup, [n for n in tunable if n in names], seed, tune_episodes, tune_workers)
    available.update(tuned)
    return {n: available[n] for n in names}, tuning


def evaluate_on_test(setup: Setup, policies: dict[str, Policy], episodes: int, seed: int,
                     progress: bool = False) -> dict[str, EvalResult]:
    """Paired evaluation of every policy on the held-out traces x held-out scenes."""
    return evaluate_many(policies, setup.factory("test"), setup.test_traces, episodes, seed, progress)


def trace_means(traces: Sequence[Trace]) -> np.ndarray:
    return np.array([t.mean_mbps for t in traces])
