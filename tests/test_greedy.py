"""learned-greedy (the one-step learned baseline), grid searches that leave no optimum on an edge, and references
ordered by construction (link-oracle >= cachenet on the tuning episodes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import constant_trace, hand_profile, outage_trace

from agents.evaluation import Setup, evaluate_many, named_policies, training_scorer, write_report
from agents.evaluation.greedy import action_labels, fit_mlp
from agents.policies import (
    CacheNetPolicy,
    ClairvoyantLinkPolicy,
    ConstantPolicy,
    LearnedGreedyPolicy,
    tune_cachenet,
    tune_cbo_cond,
    tune_clairvoyant,
)
from agents.policies.tuning import TAU_GRID, coordinate_search, grid_search
from envs import EnvConfig, OffloadVectorEnv
from perception import FrameProfile

CFG = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0,
                device_ms=0.0, request_ms=0.0, episode_frames=30, profile_split="all", trace_split="all")
TRACES = [constant_trace(8.0), outage_trace(), constant_trace(0.5, 50.0, "slow")]


class Point(ConstantPolicy):
    """A policy that is only its parameters (what a grid search scores)."""

    def __init__(self, **params: float):
        super().__init__(0, "point")
        self.__dict__.update(params)
        self.params = params

    def describe(self) -> dict:
        return {"name": self.name, **self.params}


def test_an_optimum_on_the_grid_edge_extends_the_grid_until_it_is_inside() -> None:
    calls: list[dict] = []

    def score(p: Point) -> float:
        calls.append(p.params)
        return -abs(p.tau + 0.3) - 0.1 * abs(p.margin - 0.1) + 0.01 * p.flag

    best, rows = grid_search(score, Point, {"tau": TAU_GRID, "margin": [0.0, 0.1, 0.2], "flag": [False, True]},
                             "point")
    assert min(TAU_GRID) == -0.1  # the optimum (-0.3) lies outside the grid
    assert (best.tau, best.margin, best.flag) == (-0.3, 0.1, True)
    added = sorted({r["tau"] for r in rows if r.get("extended")})
    assert added == [-0.35, -0.3, -0.25, -0.2, -0.15]  # one step past the optimum shows it is inside
    assert len(rows) == len(calls) == 11 * 3 * 2 + 5 * 3 * 2
    (edge,) = best.tuning_edges
    assert edge == {"param": "tau", "value": -0.3, "side": "low", "grid": [-0.1, 0.4], "searched": [-0.35, 0.4],
                    "added": 5, "still_on_edge": False, "why": "inside the extended grid"}


def test_an_extension_stops_at_its_bound_and_says_so() -> None:
    best, _ = grid_search(lambda p: p.min_cos, Point, {"min_cos": [0.8, 0.9], "other": [1.0, 2.0]}, "point")
    assert best.min_cos == 1.0
    (edge,) = [e for e in best.tuning_edges if e["param"] == "min_cos"]
    assert edge["still_on_edge"] and edge["why"] == "at its search bound" and edge["searched"] == [0.8, 1.0]
    # a parameter without a search bound is not extended, but its edge is reported
    best, rows = grid_search(lambda p: p.k, Point, {"k": [1.0, 2.0]}, "point")
    assert best.k == 2.0 and len(rows) == 2
    assert best.tuning_edges[0]["why"] == "not extended (no search bound for this parameter)"


def test_coordinate_search_never_ends_below_its_start_and_scores_each_policy_once() -> None:
    calls = []

    def score(p: Point) -> float:
        calls.append(dict(p.params))
        return -abs(p.tau - 0.123) - abs(p.margin - 0.2)

    start = {"tau": 0.123, "margin": 0.0}
    best, rows = coordinate_search(score, Point, start, [{"margin": [0.0, 0.1, 0.2, 0.3]}, {"tau": [0.0, 0.3]}],
                                   "point")
    assert (best.tau, best.margin) == (0.123, 0.2)  # the start's tau joined the stage's grid and stayed best
    assert 0.123 in [r["tau"] for r in rows[4:]]
    assert len(calls) == len({json.dumps(c, sort_keys=True) for c in calls})  # no point was scored twice


def test_action_labels_are_the_outcome_of_taking_each_action() -> None:
    prof = hand_profile(n_clips=6, frames=8)
    prof.student_correct[::3] = True  # the student is right on some frames, so fallbacks are visible
    for a in range(5):
        env = OffloadVectorEnv(6, prof, TRACES, CFG)
        env.reset(seed=list(range(6)))
        obs = env.observe()
        for _ in range(CFG.episode_frames):
            want = action_labels(env, obs)[:, a]
            obs, _, _, _, info = env.step(np.full(6, a))
            assert np.array_equal(info["correct"], want), env.action_names[a]


def _setup(prof: FrameProfile) -> Setup:
    return Setup(prof, CFG.replace(profile_split="train"), TRACES, TRACES)


def _factory(prof: FrameProfile):
    return lambda n, traces: OffloadVectorEnv(n, prof, traces, CFG)


def test_learned_greedy_fits_on_training_rollouts_and_beats_local() -> None:
    prof = hand_profile(n_clips=6, frames=8)
    pols, tuning = named_policies(_setup(prof), ["local", "learned-greedy"], 0)
    greedy = pols["learned-greedy"]
    assert isinstance(greedy, LearnedGreedyPolicy) and "learned-greedy" in tuning
    fit = tuning["learned-greedy"]["params"]["fit"]
    assert fit["behaviour"] == "cachenet" and fit["samples"] > 0
    res = evaluate_many(pols, _factory(prof), TRACES, episodes=2, seed=3)
    acc = {n: r.metrics["all"]["accuracy"] for n, r in res.items()}
    assert acc["local"] == 0.0 and acc["learned-greedy"] > 0.3  # the student is never right; the server is
    env = OffloadVectorEnv(3, prof, TRACES, CFG)
    greedy.attach(env)
    env.reset(seed=[0, 1, 2])
    p = greedy.model.predict(env.observe())
    assert (p[:, 0] < 0.2).all()  # P(local answer right) is learned to be low
    with pytest.raises(ValueError, match="fitted on observation fields"):
        greedy.bind_fields(env.observation_fields[:-1], env.action_names)


def test_fit_mlp_learns_a_rule() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5], 1)
    model = fit_mlp(x[:3000], y[:3000], x[3000:], y[3000:], ["a", "b", "c"], ["u", "v"], hidden=(16,), epochs=8)
    acc = ((model.predict(x[3000:]) > 0.5) == y[3000:]).mean(0)
    assert (acc > 0.95).all()
    assert 1 <= model.info["best_epoch"] <= model.info["epochs"]
    assert model.info["validation_bce"] < model.info["validation_bce_constant"]
    with pytest.raises(ValueError, match="no training samples"):
        fit_mlp(x[:0], y[:0], x, y, ["a", "b", "c"], ["u", "v"])


def test_link_oracle_contains_cachenets_point_and_is_at_least_cachenet_on_the_tuning_episodes() -> None:
    prof = hand_profile(n_clips=6, frames=8)
    setup = _setup(prof)
    score, _ = training_scorer(setup, 0, 2)
    cond, _ = tune_cbo_cond(score)
    cache, _ = tune_cachenet(score, cond)
    link, rows = tune_clairvoyant(score, cache)
    own = [r for r in rows[:64] if r["link_test"] == "predicted" and r["wait_pending"] == cache.wait_pending]
    assert own and all(r["score"] == pytest.approx(score(cache)) for r in own)  # cachenet's point, first stage
    assert score(link) >= score(cache)
    # in predicted mode it is cachenet, decision for decision
    same = ClairvoyantLinkPolicy(link_test="predicted", **{k: v for k, v in cache.describe().items()
                                                           if k != "name"})
    res = evaluate_many({"cachenet": cache, "same": same}, _factory(prof), TRACES, episodes=2, seed=4)
    assert np.array_equal(res["cachenet"].rollout.action, res["same"].rollout.action)
    assert same.describe()["reads_preview"] == []


def test_the_report_calls_a_reference_below_the_best_heuristic_by_its_name(tmp_path: Path) -> None:
    prof = hand_profile(n_clips=6, frames=8)
    setup = _setup(prof)
    pols = {"local": ConstantPolicy(0, "local"),
            "cachenet": CacheNetPolicy(tau=0.0, margin=-5.0, min_cos=0.5, max_age_s=1e9),
            "link-oracle": ClairvoyantLinkPolicy(tau=2.0, min_cos=2.0)}  # never sends, never reuses: local
    res = evaluate_many(pols, _factory(prof), TRACES, episodes=2, seed=0)
    assert res["link-oracle"].metrics["all"]["accuracy"] < res["cachenet"].metrics["all"]["accuracy"]
    extra = {"heuristic_tuning": {"grid_edges": {"cachenet": [{"param": "tau", "still_on_edge": True}]}}}
    write_report(res, tmp_path, np.array([t.mean_mbps for t in TRACES]), setup.action_names(), extra, plots=False)
    meta = json.loads((tmp_path / "report_meta.json").read_text())
    (below,) = meta["references_below_best"]
    assert below.startswith("link-oracle (0.") and "below the best tuned reference cachenet" in below
    assert meta["grid_edges"] == extra["heuristic_tuning"]["grid_edges"]
    md = (tmp_path / "report.md").read_text()
    assert "no upper reference here" in md and "information-limited upper reference" not in md

