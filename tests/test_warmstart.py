"""Warm start (behaviour cloning from a tuned reference, then PPO): the clone agrees with its teacher, and a
config that names a teacher must be given that very policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import constant_trace, hand_profile, outage_trace

from agents.evaluation import Setup, describe_training
from agents.policies import CacheNetPolicy, ConstantPolicy
from agents.training import TrainConfig, train_sb3
from agents.workflow.runs import training_conditions
from envs import EnvConfig

CFG = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0,
                device_ms=0.0, request_ms=0.0, episode_frames=30, profile_split="all", trace_split="all")
TRACES = [constant_trace(8.0), outage_trace(), constant_trace(0.5, 50.0, "slow"), constant_trace(4.0, 80.0, "mid")]
SMALL = dict(timesteps=256, n_envs=4, n_steps=64, batch_size=64, eval_freq=128, checkpoint_freq=128,
             net_arch=(32, 32), threads=1)


@pytest.mark.slow
def test_behaviour_cloning_copies_the_teacher_before_ppo(tmp_path: Path) -> None:
    setup = Setup(hand_profile(n_clips=6, frames=8), CFG.replace(profile_split="train"), TRACES, TRACES)
    teacher = CacheNetPolicy(tau=0.0, margin=-5.0, min_cos=0.5, max_age_s=1e9)  # send when not reusable
    res = train_sb3(setup, tmp_path / "run", TrainConfig(warm_start="cachenet", **SMALL), progress=False,
                    log=lambda _: None, teacher=teacher)
    info = json.loads((tmp_path / "run" / "train.json").read_text())
    warm = info["warm_start"]
    assert warm["teacher"] == "cachenet" and warm["samples"] > 0
    assert warm["agreement"] > 0.9  # the network acts like its teacher where the teacher went
    assert info["train_config"]["warm_start"] == "cachenet" and res.timesteps >= 256


def test_a_warm_start_needs_its_named_teacher(tmp_path: Path) -> None:
    setup = Setup(hand_profile(n_clips=6, frames=8), CFG.replace(profile_split="train"), TRACES, TRACES)
    with pytest.raises(ValueError, match="warm_start='cachenet' needs the policy of that name"):
        train_sb3(setup, tmp_path / "a", TrainConfig(warm_start="cachenet", **SMALL), progress=False)
    with pytest.raises(ValueError, match="warm_start='none' needs"):
        train_sb3(setup, tmp_path / "b", TrainConfig(**SMALL), progress=False, teacher=CacheNetPolicy())
    with pytest.raises(ValueError, match="implemented for SB3's feed-forward actor-critics"):
        TrainConfig(algo="dqn", warm_start="cachenet")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_warm_start_per_speed_clones_each_speeds_teacher_on_that_speed(tmp_path: Path) -> None:
    """Two teachers of one name that disagree everywhere (one answers locally, one offloads): a clone that agrees
    with both on most states must have seen each on its own speed's states only."""
    setup = Setup(hand_profile(n_clips=6, frames=8), CFG.replace(profile_split="train"), TRACES, TRACES)
    scales = (0.25, 4.0)
    teachers = [ConstantPolicy(0, "cachenet"), ConstantPolicy(1, "cachenet")]
    cfg = TrainConfig(warm_start="cachenet", warm_start_per_scale=True, bandwidth_scales=scales, val_fraction=0.5,
                      **SMALL)
    train_sb3(setup, tmp_path / "run", cfg, progress=False, log=lambda _: None, scale_teachers=teachers)
    warm = json.loads((tmp_path / "run" / "train.json").read_text())["warm_start"]
    assert warm["teacher"] == "cachenet" and warm["teachers"] == 2
    conditions = training_conditions([tmp_path / "run"])["run"]
    assert describe_training(conditions) == "bandwidth x0.25, 4 and 200 ms, the warm start re-tuned per speed"
    # as many states as one teacher over both speeds: each speed's fitting traces once
    one = train_sb3(setup, tmp_path / "one", cfg.replace(warm_start_per_scale=False), progress=False,
                    log=lambda _: None, teacher=teachers[0])
    assert one.timesteps >= 256
    assert json.loads((tmp_path / "one" / "train.json").read_text())["warm_start"]["samples"] == warm["samples"]
    assert warm["agreement"] > 0.8  # one constant answer would agree on about half the states
    with pytest.raises(ValueError, match="warm_start_per_scale needs scale_teachers"):
        train_sb3(setup, tmp_path / "a", cfg, progress=False, teacher=teachers[0])
    with pytest.raises(ValueError, match="warm_start_per_scale needs scale_teachers"):
        train_sb3(setup, tmp_path / "a", cfg, progress=False, scale_teachers=teachers[:1])
    with pytest.raises(ValueError, match="scale_teachers without warm_start_per_scale"):
        train_sb3(setup, tmp_path / "a", cfg.replace(warm_start_per_scale=False), progress=False,
                  teacher=teachers[0], scale_teachers=teachers)
    for bad in (dict(warm_start_per_scale=True, bandwidth_scales=scales),
                dict(warm_start_per_scale=True, warm_start="cachenet")):
        with pytest.raises(ValueError, match="warm_start_per_scale: clones a warm start's teacher"):
            TrainConfig(**bad)
    assert not (tmp_path / "a").exists()
