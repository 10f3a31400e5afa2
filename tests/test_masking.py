"""The adjusted actor-critic (``agents.training.adjusted``). Action masking: the mask read off the observation is
exactly what the env refuses or cannot reuse, and a policy trained with ``TrainConfig.action_mask`` never takes a
masked action, in PyTorch or in its ONNX export. The residual prior: before training, the policy acts exactly as
its learned-greedy, and its export computes the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import constant_trace, hand_profile, outage_trace, run_cli

from agents.evaluation import Setup, describe_training
from agents.policies import ConstantPolicy, GreedyModel, LearnedGreedyPolicy, greedy_module
from agents.training import TrainConfig, load_run_model, train_sb3
from agents.workflow.runs import training_conditions
from envs import EnvConfig, OffloadEnv, OffloadVectorEnv
from envs.sb3 import SB3OffloadVecEnv
from offload_common.observation import action_mask

CFG = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0, device_ms=0.0, request_ms=0.0, episode_frames=30,
                profile_split="all", trace_split="all", max_queue=2)
TRACES = [constant_trace(0.3, 60.0, "slow"), outage_trace(), constant_trace(4.0, 80.0, "mid")]
SMALL = dict(timesteps=256, n_envs=4, n_steps=64, batch_size=64, eval_freq=128, checkpoint_freq=128,
             net_arch=(32, 32), threads=1)


def test_the_mask_is_what_the_env_refuses_and_cannot_reuse() -> None:
    """Random actions on a slow link with a 2-upload buffer: every masked send is refused and every allowed one is
    sent; reuse is masked exactly while no answer is cached, and then scores as the local answer."""
    env = OffloadVectorEnv(8, hand_profile(n_clips=4, frames=20), TRACES, CFG)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    n_actions = len(env.action_names)
    reuse = n_actions - 1
    seen = {"refused": 0, "sent": 0, "reuse_masked": 0, "reuse_allowed": 0}
    for _ in range(120):
        mask = env.action_masks()
        assert np.array_equal(mask, action_mask(env.observation_spec, obs)) and mask[:, 0].all()
        actions = rng.integers(0, n_actions, env.num_envs)
        obs, _, _, _, info = env.step(actions)
        stepped = info["_refused"]
        remote = (actions >= 1) & (actions < reuse)
        allowed = mask[np.arange(env.num_envs), actions]
        assert np.array_equal(info["refused"][stepped], (remote & ~allowed)[stepped])
        masked_reuse = (actions == reuse) & ~allowed & stepped
        assert not info["reused"][masked_reuse].any()
        seen["refused"] += int((remote & ~allowed & stepped).sum())
        seen["sent"] += int((remote & allowed & stepped).sum())
        seen["reuse_masked"] += int(masked_reuse.sum())
        seen["reuse_allowed"] += int(((actions == reuse) & allowed & stepped).sum())
    assert min(seen.values()) > 0, seen  # every case happened


def test_single_and_sb3_envs_offer_the_same_masks() -> None:
    single = OffloadEnv(hand_profile(n_clips=4, frames=20), TRACES, CFG)
    obs, _ = single.reset(seed=5)
    assert single.action_masks().shape == (len(single.action_names),)
    assert np.array_equal(single.action_masks(), action_mask(single.core.spec, obs[None])[0])
    vec = SB3OffloadVecEnv(3, hand_profile(n_clips=4, frames=20), TRACES, CFG)
    vec.seed(5)
    obs = vec.reset()
    per_env = vec.env_method("action_masks")  # what sb3-contrib's MaskablePPO asks a VecEnv for
    assert len(per_env) == 3 and np.array_equal(np.stack(per_env), action_mask(vec.observation_spec, obs))
    with pytest.raises(AttributeError, match="no per-env methods but action_masks"):
        vec.env_method("render")


def test_a_masked_policy_never_takes_a_masked_action_and_its_export_masks_too(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    import torch

    from agents.deploy.export import export_run

    setup = Setup(hand_profile(n_clips=6, frames=8), CFG.replace(profile_split="train"), TRACES, TRACES)
    reuse = len(setup.action_names()) - 1
    teacher = ConstantPolicy(reuse, "cachenet")  # always reuse: masked at every episode's start
    train_sb3(setup, tmp_path / "run", TrainConfig(action_mask=True, warm_start="cachenet", **SMALL),
              progress=False, log=lambda _: None, teacher=teacher)
    info = json.loads((tmp_path / "run" / "train.json").read_text())
    assert info["train_config"]["action_mask"] is True
    assert info["warm_start"]["masked_as_local"] > 0  # the teacher's reuse before any answer came back
    assert describe_training(training_conditions([tmp_path / "run"])["run"]).endswith(", actions masked")
    model, _, _ = load_run_model(tmp_path / "run")  # the masking policy comes back from the saved zip
    env = OffloadVectorEnv(8, setup.profile, TRACES, CFG)
    obs, _ = env.reset(seed=1)
    spec = env.observation_spec
    onnx_path = export_run(tmp_path / "run")
    session = ort.InferenceSession(str(onnx_path))
    greedy = greedy_module(model)
    rng = np.random.default_rng(0)
    masked_states = 0
    for _ in range(60):
        mask = action_mask(spec, obs)
        masked_states += int((~mask).any(1).sum())
        # raise every logit of a masked action: the mask, not the network's preference, keeps them out
        with torch.no_grad():
            sampled, _, _ = model.policy(torch.as_tensor(obs), deterministic=False)
            logits, act = greedy(torch.as_tensor(obs))
        onnx_act = session.run(["action"], {"obs": obs})[0]
        for a in (sampled.numpy(), act.numpy(), onnx_act):
            assert mask[np.arange(len(obs)), a].all()
        assert (logits.numpy()[~mask] < -1e7).all()
        obs, *_ = env.step(rng.integers(0, len(env.action_names), env.num_envs))
    assert masked_states > 0


def test_masking_is_for_sb3_actor_critics() -> None:
    with pytest.raises(ValueError, match="masking is implemented for SB3's actor-critics"):
        TrainConfig(algo="dqn", action_mask=True)
    with pytest.raises(ValueError, match="masking is implemented for SB3's actor-critics"):
        TrainConfig(framework="rllib", action_mask=True)
    with pytest.raises(ValueError, match="action_mask=1: expected a bool"):
        TrainConfig(action_mask=1)


def _random_greedy(env: OffloadVectorEnv, seed: int = 0) -> LearnedGreedyPolicy:
    """A learned-greedy whose model is random (ties between actions have probability 0)."""
    rng = np.random.default_rng(seed)
    d, a = len(env.observation_fields), len(env.action_names)
    model = GreedyModel(mean=rng.normal(0, 0.1, d).astype(np.float32), scale=np.full(d, 0.5, np.float32),
                        weights=[rng.normal(0, 0.5, (d, 8)).astype(np.float32),
                                 rng.normal(0, 0.5, (8, a)).astype(np.float32)],
                        biases=[np.zeros(8, np.float32), rng.normal(0, 0.5, a).astype(np.float32)],
                        fields=list(env.observation_fields), actions=list(env.action_names))
    return LearnedGreedyPolicy(model, send_bonus=-0.05, reuse_bonus=0.1)


def test_a_residual_policy_starts_as_its_learned_greedy_and_exports_the_same_logits(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    import torch
    from stable_baselines3 import PPO

    from agents.deploy.export import export_model
    from agents.training.adjusted import AdjustedActorCriticPolicy, greedy_prior
    from envs.sb3 import SB3OffloadVecEnv

    profile = hand_profile(n_clips=6, frames=8)
    env = OffloadVectorEnv(16, profile, TRACES, CFG)
    obs, _ = env.reset(seed=2)
    teacher = _random_greedy(env)
    teacher.attach(env)
    venv = SB3OffloadVecEnv(2, profile, TRACES, CFG)
    model = PPO(AdjustedActorCriticPolicy, venv, device="cpu", n_steps=16, batch_size=16,
                policy_kwargs={"net_arch": [16, 16], "prior": greedy_prior(teacher, 0.02, env.observation_spec)})
    greedy = greedy_module(model)
    rng = np.random.default_rng(0)
    onnx_path = export_model(model, tmp_path / "p.onnx", env.observation_fields, env.action_names)
    session = ort.InferenceSession(str(onnx_path))
    for _ in range(20):
        with torch.no_grad():
            logits, act = greedy(torch.as_tensor(obs))
        assert np.array_equal(act.numpy(), teacher.act(obs))  # exactly learned-greedy's choices
        scores = teacher.model.predict(obs) + np.array([0, *[-0.05] * (len(env.action_names) - 2), 0.1])
        np.testing.assert_allclose(logits.numpy(), scores / 0.02, rtol=1e-4, atol=1e-3)
        onnx_logits, onnx_act = session.run(["logits", "action"], {"obs": obs})
        np.testing.assert_allclose(onnx_logits, logits.numpy(), rtol=1e-4, atol=1e-3)
        assert np.array_equal(onnx_act, act.numpy())
        obs, *_ = env.step(rng.integers(0, len(env.action_names), env.num_envs))
    with pytest.raises(ValueError, match="must be a tuned learned-greedy policy"):
        greedy_prior(ConstantPolicy(0, "learned-greedy"), 0.02, env.observation_spec)


def test_a_residual_run_trains_and_its_settings_are_checked(tmp_path: Path) -> None:
    setup = Setup(hand_profile(n_clips=6, frames=8), CFG.replace(profile_split="train"), TRACES, TRACES)
    env = OffloadVectorEnv(2, setup.profile, TRACES, setup.env_config("train"))
    teacher = _random_greedy(env)
    res = train_sb3(setup, tmp_path / "run", TrainConfig(residual=True, warm_start="learned-greedy", **SMALL),
                    progress=False, log=lambda _: None, teacher=teacher)
    assert res.timesteps >= 256
    info = json.loads((tmp_path / "run" / "train.json").read_text())
    assert info["train_config"]["residual"] is True and info["warm_start"]["teacher"] == "learned-greedy"
    model, _, _ = load_run_model(tmp_path / "run")
    assert model.policy.prior["model"] == teacher.model.fingerprint()  # the prior comes back with the model
    assert describe_training(training_conditions([tmp_path / "run"])["run"]) == (
        "bandwidth x1 and 200 ms, a residual on learned-greedy")
    with pytest.raises(ValueError, match="TrainConfig.residual: the prior is the warm start's learned-greedy"):
        TrainConfig(residual=True, warm_start="cachenet")
    with pytest.raises(ValueError, match="residual_temperature=0: expected a number > 0"):
        TrainConfig(residual=True, warm_start="learned-greedy", residual_temperature=0)
    with pytest.raises(ValueError, match="must be a tuned learned-greedy policy"):
        train_sb3(setup, tmp_path / "bad", TrainConfig(residual=True, warm_start="learned-greedy", **SMALL),
                  progress=False, log=lambda _: None, teacher=ConstantPolicy(0, "learned-greedy"))
    assert not (tmp_path / "bad").exists()  # refused before the run folder was made


def test_the_cli_refuses_masking_or_a_residual_it_cannot_honour(capsys, tmp_path: Path) -> None:
    code, err = run_cli(capsys, "train", "--framework", "rllib", "--action-mask", "--out", str(tmp_path / "t"),
                        "--no-progress")
    assert code == 2 and "masking is implemented for SB3's actor-critics" in err
    code, err = run_cli(capsys, "run", "--residual", "--warm-start", "cachenet", "--out", str(tmp_path / "r"),
                        "--no-progress")
    assert code == 2 and "TrainConfig.residual: the prior is the warm start's learned-greedy" in err
    assert not (tmp_path / "t").exists() and not (tmp_path / "r").exists()
