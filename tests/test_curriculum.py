"""The Genet-style curriculum over bandwidth scales: validation scores each scale on its own episodes, the fitting
traces are re-weighted by scale, and a run re-weights where it trails its references by the most, recording each
round; settings it cannot honour are refused before training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import constant_trace, hand_profile, run_cli

from agents.evaluation import Setup, Validation, describe_training
from agents.policies import ConstantPolicy
from agents.training import TrainConfig, train_sb3
from agents.workflow.runs import training_conditions
from envs import EnvConfig

CFG = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0, device_ms=0.0, request_ms=0.0, episode_frames=12,
                profile_split="train", trace_split="all")
# 0.5 and 4 Mbit/s: at x0.25 neither gets a 50 kB frame up in time, at x4 both do
TRACES = [constant_trace(0.5, 60.0, "a"), constant_trace(4.0, 60.0, "b"), constant_trace(0.5, 60.0, "c"),
          constant_trace(4.0, 60.0, "d")]
SCALES = (0.25, 4.0)


def _setup() -> Setup:
    return Setup(hand_profile(n_clips=6, frames=8), CFG, TRACES, TRACES[:2])


def test_validation_scores_each_scale_on_its_own_episodes_and_reweights_the_fitting_files() -> None:
    val = Validation.create(_setup(), 0.5, 0, SCALES)
    assert val.scales == SCALES and len(val.fit_traces) == len(val.val_traces) == 4
    fit_x025, fit_x4 = val.fit_traces[:2], val.fit_traces[2:]
    assert val.fit_weighted([1, 1]) == val.fit_traces
    assert val.fit_weighted([1, 3]) == fit_x025 + fit_x4 * 3
    assert val.fit_weighted([0, 1]) == fit_x4
    for bad in ([1], [1, -1], [0, 0], [1.5, 1]):
        with pytest.raises(ValueError, match="expected 2 integers >= 0"):
            val.fit_weighted(bad)
    offload = ConstantPolicy(1, "offload-lowest")
    by_scale = val.accuracy_by_scale(offload)
    assert len(by_scale) == 2 and by_scale[1] > by_scale[0]  # x4 gets the frames up in time, x0.25 does not
    assert np.mean(by_scale) == pytest.approx(val.accuracy(offload), abs=1e-12)  # as many episodes per scale
    local = ConstantPolicy(0, "local")
    assert val.accuracy_by_scale(local)[0] == pytest.approx(val.accuracy_by_scale(local)[1])  # no link used
    over_deadlines = Validation.create(_setup(), 0.5, 0, SCALES, (100.0, 400.0))
    with pytest.raises(ValueError, match="dealt over 2 deadlines"):
        over_deadlines.accuracy_by_scale(local)


def test_a_curriculum_run_reweights_where_it_trails_its_references_most(tmp_path: Path) -> None:
    setup = _setup()
    tcfg = TrainConfig(timesteps=192, n_envs=4, n_steps=16, batch_size=32, eval_freq=64, checkpoint_freq=64,
                       net_arch=(16, 16), threads=1, val_fraction=0.5, bandwidth_scales=SCALES, curriculum_rounds=2)
    # the references at x0.25 answer locally, at x4 they offload: the policy trails them by different gaps
    refs = [[ConstantPolicy(0, "local")], [ConstantPolicy(1, "offload-lowest"), ConstantPolicy(0, "local")]]
    lines: list[str] = []
    train_sb3(setup, tmp_path / "run", tcfg, progress=False, log=lines.append, curriculum=refs)
    rec = json.loads((tmp_path / "run" / "train.json").read_text())
    rounds = rec["curriculum"]
    assert len(rounds) == 2
    val = Validation.create(setup, 0.5, 0, SCALES)
    best = [val.accuracy_by_scale(refs[0][0])[0],
            max(val.accuracy_by_scale(p)[1] for p in refs[1])]
    weights = [1, 1]
    for k, r in enumerate(rounds):
        assert r["timesteps"] >= 192 * (k + 1) // 3  # after phase k (rounded up to PPO's rollouts)
        assert r["best_reference_val"] == pytest.approx(best, abs=1e-12)
        assert r["gap"] == pytest.approx([b - m for b, m in zip(best, r["policy_val"])], abs=1e-12)
        pick = int(np.argmax(r["gap"]))
        assert r["picked"] == SCALES[pick]
        weights[pick] += 1
        assert r["weights"] == weights
    assert rounds[0]["timesteps"] < rounds[1]["timesteps"]
    assert sum(line.startswith("curriculum round") for line in lines) == 2
    steps = [h["timesteps"] for h in rec["history"]]
    assert steps == sorted(steps) and steps[-1] >= 192  # validated through every phase, in order
    assert sum(s >= r["timesteps"] for s in steps for r in rounds[:1]) >= 2  # and after the first round
    assert TrainConfig.from_dict(rec["train_config"]).curriculum_rounds == 2
    conditions = training_conditions([tmp_path / "run"])["run"]
    assert conditions == {"bandwidth_scales": [0.25, 4.0], "deadline_ms": 200.0, "curriculum_rounds": 2}
    assert describe_training(conditions) == "bandwidth x0.25, 4 and 200 ms, a curriculum of 2 rounds"
    # the references must come with the curriculum, one list per training scale
    with pytest.raises(ValueError, match="needs the re-tuned references at each of the 2 bandwidth scales"):
        train_sb3(setup, tmp_path / "other", tcfg, progress=False, log=lines.append, curriculum=refs[:1])
    with pytest.raises(ValueError, match="needs the re-tuned references"):
        train_sb3(setup, tmp_path / "other", tcfg, progress=False, log=lines.append)


@pytest.mark.parametrize(("settings", "message"), [
    (dict(curriculum_rounds=-1), "expected an int >= 0"),
    (dict(curriculum_rounds=1), r"bandwidth_scales=\(1.0,\)"),
    (dict(curriculum_rounds=1, bandwidth_scales=(0.5, 2.0), deadlines_ms=(100.0, 200.0)), "at one deadline"),
    (dict(curriculum_rounds=1, framework="rllib"), "framework='rllib'"),
])
def test_curriculum_settings_it_cannot_honour_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_train_refuses_a_curriculum_before_loading_anything(capsys, tmp_path: Path) -> None:
    code, err = run_cli(capsys, "train", "--curriculum-rounds", "1", "--out", str(tmp_path / "t"), "--no-progress")
    assert code == 2 and "--curriculum-rounds 1: train tunes no references" in err
    assert not (tmp_path / "t").exists()
