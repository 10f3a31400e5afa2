"""Grid searches scored in batches (``score_many``) and on worker processes give exactly the sequential results."""

from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import pytest
from helpers import constant_trace, hand_profile, outage_trace

from agents.evaluation import Setup, TrainingScorer, training_scorer
from agents.policies import (
    CacheNetPolicy,
    CBOCondPolicy,
    CBOPolicy,
    ConstantPolicy,
    GreedyModel,
    LearnedGreedyPolicy,
    profiled_accuracy,
)
from agents.policies.tuning import TAU_GRID, coordinate_search, grid_search
from envs import EnvConfig, OffloadVectorEnv

CFG = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0, episode_frames=30, profile_split="all", trace_split="all")
TRACES = [constant_trace(8.0), outage_trace(), constant_trace(0.5, 50.0, "slow")]


class Toy(ConstantPolicy):
    """A policy that is only its parameters; ``ignored`` is left out of its description (two points, one score)."""

    def __init__(self, **params):
        super().__init__(0, "toy")
        self.__dict__.update(params)
        self.params = params

    def describe(self) -> dict:
        return {"name": self.name, **{k: v for k, v in self.params.items() if k != "ignored"}}


def _value(p: Toy) -> float:
    # optimum below the tau grid (extension slices), ties between flag values (first best kept), and
    # ``ignored`` absent from the description (the memo answers its second value)
    return round(-abs(p.tau + 0.2) - 0.1 * abs(p.margin - 0.1), 9)


class Batched:
    """A scorer with ``score_many``: records every batch; its plain call is refused, so every score is batched."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, p: Toy) -> float:
        raise AssertionError("a score_many scorer is asked in batches")

    def score_many(self, policies: list[Toy]) -> list[float]:
        self.batches.append([json.dumps(p.describe(), sort_keys=True) for p in policies])
        return [_value(p) for p in policies]


def _search(score, how: str):
    grid = {"tau": TAU_GRID, "margin": [0.0, 0.1, 0.2], "flag": [False, True], "ignored": [1, 2]}
    if how == "grid":
        return grid_search(score, Toy, grid, "toy")
    stages = [{"margin": [0.0, 0.1, 0.2, 0.3], "ignored": [1, 2]}, {"tau": TAU_GRID, "flag": [False, True]},
              {"margin": [0.1, 0.2]}]
    return coordinate_search(score, Toy, {"tau": 0.0, "margin": 0.0, "flag": False, "ignored": 1}, stages, "toy")


@pytest.mark.parametrize("how", ["grid", "coordinate"])
def test_score_many_gives_the_sequential_rows_and_best(how: str) -> None:
    calls: list[str] = []

    def plain(p: Toy) -> float:
        calls.append(json.dumps(p.describe(), sort_keys=True))
        return _value(p)

    best_seq, rows_seq = _search(plain, how)
    batched = Batched()
    best_par, rows_par = _search(batched, how)
    assert rows_par == rows_seq and best_par.params == best_seq.params
    assert best_par.tuning_edges == best_seq.tuning_edges
    assert any(r.get("extended") for r in rows_seq)  # extension slices were scored, as batches of their own
    assert len(batched.batches) > 1 and best_seq.tau == -0.2 and best_seq.flag is False
    scored = [k for b in batched.batches for k in b]
    assert scored == calls  # the same descriptions, in the same order, each once (memo hits are not re-scored)
    assert len(scored) == len(set(scored)) < len(rows_seq)


def _setup() -> Setup:
    return Setup(hand_profile(n_clips=6, frames=8), CFG.replace(profile_split="train"), TRACES, TRACES)


def _policies(setup: Setup) -> list:
    a_r, a_t = profiled_accuracy(setup.profile)
    env = OffloadVectorEnv(1, setup.profile, TRACES, setup.env_config("train"))
    rng = np.random.default_rng(0)
    d, n = len(env.observation_fields), len(env.action_names)
    model = GreedyModel(np.zeros(d, np.float32), np.ones(d, np.float32),
                        [rng.standard_normal((d, 8)).astype(np.float32), rng.standard_normal((8, n)).astype(np.float32)],
                        [np.zeros(8, np.float32), np.zeros(n, np.float32)], list(env.observation_fields),
                        list(env.action_names))
    return [CBOPolicy(a_r, a_t, 0.1, 0.1), CBOPolicy(a_r, a_t, -0.2, 0.0, 0.1, name="cbo+teacher"),
            CBOCondPolicy(tau=0.05), CacheNetPolicy(tau=0.0, min_cos=0.8, max_age_s=1.0, wait_pending=True),
            LearnedGreedyPolicy(model, -0.05, 0.05)]


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            out.append(pid)
        except ProcessLookupError:
            pass
    return out


def test_two_workers_score_exactly_as_this_process_and_leave_no_process() -> None:
    setup = _setup()
    pols = _policies(setup)
    seq, _ = training_scorer(setup, 0, 2)
    want = [seq(p) for p in pols]
    assert len(set(want)) > 1  # the policies differ, so a shuffled answer would show
    before = {p.pid for p in multiprocessing.active_children()}
    with training_scorer(setup, 0, 2, workers=2)[0] as par:
        got = par.score_many(pols)
        workers = [p.pid for p in multiprocessing.active_children() if p.pid not in before]
        assert len(workers) == 2
        assert par(pols[3]) == want[3]  # a single score goes to the pool too
    assert got == want  # bit for bit, in order
    assert _alive(workers) == [] and not [p for p in multiprocessing.active_children() if p.pid in workers]


def test_the_pool_is_shut_down_when_a_score_fails_or_the_tuning_is_interrupted() -> None:
    setup = _setup()
    a_r, a_t = profiled_accuracy(setup.profile)
    before = {p.pid for p in multiprocessing.active_children()}
    scorer = TrainingScorer(setup, 0, 1, workers=2)
    with pytest.raises(ValueError, match="server accuracies"), scorer:  # a worker's error reaches the caller
        scorer.score_many([CBOPolicy(a_r, a_t), CBOPolicy(a_r[:1], a_t)])
    assert not [p for p in multiprocessing.active_children() if p.pid not in before]
    scorer = TrainingScorer(setup, 0, 1, workers=2)
    with pytest.raises(KeyboardInterrupt), scorer:
        scorer.score_many([CBOPolicy(a_r, a_t)])
        raise KeyboardInterrupt
    assert not [p for p in multiprocessing.active_children() if p.pid not in before]
