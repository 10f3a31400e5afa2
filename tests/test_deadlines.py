"""Training over several deadlines: the side-by-side batched env steps each part as that part's own env, the
validation and the warm start deal their traces over the deadlines, and a run records where it trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import constant_trace, hand_profile, outage_trace

from agents.evaluation import Setup, Validation, describe_training, evaluate
from agents.policies import CacheNetPolicy, ConstantPolicy
from agents.training import TrainConfig, load_run_policy, train_sb3
from agents.workflow.runs import training_conditions
from envs import EnvConfig, OffloadVectorEnv
from envs.sb3 import SB3ConcatVecEnv, SB3OffloadVecEnv

CFG = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0, device_ms=0.0, request_ms=0.0, episode_frames=12,
                profile_split="all", trace_split="all")
TRACES = [constant_trace(8.0), outage_trace(), constant_trace(0.5, 50.0, "slow"), constant_trace(4.0, 80.0, "mid")]


def test_side_by_side_env_steps_every_part_as_its_own_env() -> None:
    prof = hand_profile(n_clips=4, frames=6)
    fast, slow = CFG.replace(deadline_ms=100.0), CFG.replace(deadline_ms=400.0)
    both = SB3ConcatVecEnv([SB3OffloadVecEnv(3, prof, TRACES, fast), SB3OffloadVecEnv(2, prof, TRACES, slow)])
    alone = [SB3OffloadVecEnv(3, prof, TRACES, fast), SB3OffloadVecEnv(2, prof, TRACES, slow)]
    assert both.num_envs == 5
    assert both.seed(7) == [7, 8, 9, 10, 11]
    alone[0].seed(7)
    alone[1].seed(10)  # the second part's sub-envs come after the first's three
    obs = both.reset()
    assert np.array_equal(obs, np.concatenate([a.reset() for a in alone]))
    rng = np.random.default_rng(0)
    n_actions = both.action_space.n
    ends = 0
    for _ in range(30):  # past two episode ends (12 frames): the same-step autoreset of each part
        act = rng.integers(0, n_actions, 5)
        obs, rew, done, infos = both.step(act)
        ref = [alone[0].step(act[:3]), alone[1].step(act[3:])]
        assert np.array_equal(obs, np.concatenate([r[0] for r in ref]))
        assert np.array_equal(rew, np.concatenate([r[1] for r in ref]))
        assert np.array_equal(done, np.concatenate([r[2] for r in ref]))
        for got, want in zip(infos, [i for r in ref for i in r[3]]):
            assert got.keys() == want.keys()
            if "terminal_observation" in want:
                assert np.array_equal(got["terminal_observation"], want["terminal_observation"])
        ends += int(done.sum())
    assert ends == 2 * 5
    # each part kept its own deadline: the 400 ms part's first frame is not what a 100 ms env would show
    at_fast = SB3OffloadVecEnv(2, prof, TRACES, fast)
    at_fast.seed(10)
    both.seed(7)
    assert not np.array_equal(both.reset()[3:], at_fast.reset())


def test_side_by_side_parts_must_share_their_spaces() -> None:
    prof = hand_profile()
    with pytest.raises(ValueError, match="part 1 has other observation or action spaces"):
        SB3ConcatVecEnv([SB3OffloadVecEnv(1, prof, TRACES, CFG), SB3OffloadVecEnv(1, prof, TRACES, CFG.replace(history=2))])
    with pytest.raises(ValueError, match="at least one part"):
        SB3ConcatVecEnv([])


def test_validation_over_deadlines_deals_its_traces_and_pools_the_accuracy() -> None:
    setup = Setup(hand_profile(n_clips=6, frames=8), CFG.replace(profile_split="train"), TRACES * 2, TRACES)
    plain = Validation.create(setup, 0.5, 0)
    multi = Validation.create(setup, 0.5, 0, deadlines_ms=(100.0, 400.0))
    assert multi.fit_traces == plain.fit_traces and multi.val_traces == plain.val_traces
    assert [p.config.deadline_ms for p in multi.parts] == [100.0, 400.0]
    assert [p.traces for p in multi.parts] == [plain.val_traces[0::2], plain.val_traces[1::2]]
    assert [p.env.num_envs for p in multi.parts] == [len(p.traces) for p in multi.parts]
    policy = ConstantPolicy(1, "offload-lowest")  # the lowest resolution: on time or not depends on the deadline
    per_part = [evaluate(policy, lambda n, t, e=p.env: e, p.traces, 1, episode_set=p.episodes).metrics["all"]
                ["accuracy"] for p in multi.parts]
    pooled = sum(a * len(p.traces) for a, p in zip(per_part, multi.parts)) / len(multi.val_traces)
    assert multi.accuracy(policy) == pytest.approx(pooled, abs=1e-12)
    assert per_part[0] != per_part[1]
    with pytest.raises(ValueError, match="4 validation trace\\(s\\) cannot cover 5 deadlines"):
        Validation.create(setup, 0.5, 0, deadlines_ms=(100.0, 150.0, 200.0, 300.0, 400.0))


def test_a_run_over_deadlines_clones_as_many_states_and_records_its_deadlines(tmp_path: Path) -> None:
    setup = Setup(hand_profile(n_clips=6, frames=8), CFG.replace(profile_split="train"), TRACES * 2, TRACES)
    small = dict(timesteps=128, n_envs=4, n_steps=32, batch_size=64, eval_freq=128, checkpoint_freq=128,
                 net_arch=(16, 16), threads=1, val_fraction=0.5, warm_start="cachenet")
    teacher = CacheNetPolicy(tau=0.0, margin=-5.0, min_cos=0.5, max_age_s=1e9)
    for name, deadlines in (("one", ()), ("two", (100.0, 400.0))):
        train_sb3(setup, tmp_path / name, TrainConfig(deadlines_ms=deadlines, **small), progress=False,
                  log=lambda _: None, teacher=teacher)
    one, two = (json.loads((tmp_path / n / "train.json").read_text()) for n in ("one", "two"))
    assert two["warm_start"]["samples"] == one["warm_start"]["samples"] > 0  # the traces dealt, not multiplied
    assert two["train_config"]["deadlines_ms"] == [100.0, 400.0] and one["train_config"]["deadlines_ms"] == []
    # the deployment contract is the env config's own deadline, whatever the training mixed
    assert two["observation_spec"] == one["observation_spec"] and two["observation_spec"]["deadline_s"] == 0.2
    assert TrainConfig.from_dict(two["train_config"]).deadlines_ms == (100.0, 400.0)
    conditions = training_conditions([tmp_path / "one", tmp_path / "two"])
    assert conditions["two"] == {"bandwidth_scales": [1.0], "deadline_ms": 200.0, "deadlines_ms": [100.0, 400.0]}
    assert "deadlines_ms" not in conditions["one"]
    assert describe_training(conditions["two"]) == "bandwidth x1 and 100, 400 ms"
    assert describe_training(conditions["one"]) == "bandwidth x1 and 200 ms"
    # a run's policy refuses an env whose observation it was not trained on
    policy = load_run_policy(tmp_path / "one")
    policy.attach(OffloadVectorEnv(1, setup.profile, TRACES, CFG))
    with pytest.raises(ValueError, match=r"only the env's: \['top1_stable', 'pmax_ema'\]"):
        policy.attach(OffloadVectorEnv(1, setup.profile, TRACES, CFG.replace(temporal_observation=True)))


@pytest.mark.parametrize(("settings", "message"), [
    (dict(deadlines_ms=(100.0, 100.0)), "expected distinct numbers > 0"),
    (dict(deadlines_ms=(0.0,)), "expected distinct numbers > 0"),
    (dict(deadlines_ms=(100.0, 200.0, 300.0), n_envs=2), "3 deadlines need n_envs >= 3"),
    (dict(framework="rllib", deadlines_ms=(100.0, 200.0)), "RLlib trains at the env's deadline only"),
])
def test_bad_training_deadlines_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)
