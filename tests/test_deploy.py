"""ONNX export and the device runtime: parity with PyTorch, same evaluation, clear errors, no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from agents.baselines import RandomPolicy
from agents.deploy import DeviceFeatures, OnnxPolicy
from agents.evaluate import evaluate, rollout
from agents.export import export_sb3, torch_logits
from agents.sb3_train import SB3Policy
from envs import EnvConfig, OffloadVectorEnv, default_inputs
from envs.sb3 import SB3OffloadVecEnv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A PPO policy trained briefly on the committed profile, and its ONNX export."""
    from stable_baselines3 import PPO

    profile, traces = default_inputs()
    cfg = EnvConfig(episode_frames=64)
    venv = SB3OffloadVecEnv(16, profile, traces, cfg)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=256, n_epochs=2, seed=0, device="cpu",
                policy_kwargs={"net_arch": [64, 64]})
    model.learn(2048)
    path = tmp_path_factory.mktemp("onnx") / "policy.onnx"
    export_sb3(model, path, venv.core.spec.field_names, venv.core.spec.action_names,
               {"profile_weights_sha256": profile.meta["weights_sha256"]})
    return model, path, profile, traces, cfg


def _observations(profile, traces, cfg, n_rows: int = 100, steps: int = 100) -> np.ndarray:
    env = OffloadVectorEnv(n_rows, profile, traces, cfg)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    out = [obs]
    for _ in range(steps - 1):
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, n_rows))
        out.append(obs)
    return np.concatenate(out)


def test_onnx_matches_pytorch_on_10000_observations(trained) -> None:
    model, path, profile, traces, cfg = trained
    obs = _observations(profile, traces, cfg)
    assert obs.shape[0] == 10_000
    want = torch_logits(model, obs)
    pol = OnnxPolicy(path)
    got = pol.logits(obs)
    assert np.abs(got - want).max() < 1e-4
    assert np.array_equal(pol.act(obs), want.argmax(1))
    assert np.array_equal(pol.act(obs), SB3Policy(model).act(obs))


def test_onnx_file_is_valid_and_self_describing(trained) -> None:
    model, path, profile, *_ = trained
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    fields = json.loads(meta["observation_fields"])
    assert fields[0] == "top1_prob" and len(fields) == int(meta["observation_dim"])
    assert json.loads(meta["action_names"])[0] == "local"
    assert json.loads(meta["profile_weights_sha256"]) == profile.meta["weights_sha256"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_onnx_policy_gives_the_same_report(trained) -> None:
    model, path, profile, traces, cfg = trained
    factory = lambda n, t: OffloadVectorEnv(n, profile, t, cfg.replace(trace_split="all"))  # noqa: E731
    some = list(traces[:12])
    a = evaluate(SB3Policy(model), factory, some, episodes=2, seed=3)
    b = evaluate(OnnxPolicy(path), factory, some, episodes=2, seed=3)
    assert np.array_equal(a.rollout.action, b.rollout.action)
    assert a.metrics == b.metrics


def test_bad_input_names_the_layout(trained) -> None:
    _, path, *_ = trained
    pol = OnnxPolicy(path)
    good = np.zeros((2, pol.dim), np.float32)
    with pytest.raises(ValueError, match=rf"shape is \(2, {pol.dim + 1}\), expected float32 \[batch, {pol.dim}\]"):
        pol.act(np.zeros((2, pol.dim + 1), np.float32))
    with pytest.raises(TypeError, match="dtype is float64"):
        pol.act(good.astype(np.float64))
    bad = good.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values in fields \['top1_prob'\]"):
        pol.act(bad)


def test_device_features_reproduce_the_env_observation(trained) -> None:
    _, path, profile, traces, cfg = trained
    env = OffloadVectorEnv(8, profile, traces, cfg)
    rollout(RandomPolicy(env.core.n_actions, seed=2), env, _eps(env))
    spec = env.core.spec
    dev = DeviceFeatures(spec.top_k, spec.history, spec.resolutions, spec.deadline_s, spec.remote_rtt_s,
                         spec.remote_compute_s, spec.max_queue, spec.prior_mbps)
    assert dev.field_names == env.observation_fields == OnnxPolicy(path).observation_fields
    sig = env.core.device_signals()
    obs = dev(sig["topk_prob"], sig["remote_kb"], sig["meas_mbps"], sig["n_meas"], sig["backlog_s"],
              sig["pending"], sig["since_meas_s"], sig["offload_rate"], sig["last_action"])
    assert np.allclose(obs, env.core.observe(), atol=1e-6)


def _eps(env):
    from agents.evaluate import Episodes

    core = env.core
    return Episodes(np.arange(8) % len(core.traces), np.full(8, 3.0),
                    np.tile(np.arange(core.n_clips_episode), (8, 1)) % len(core.clip_start))


def test_device_runtime_imports_neither_torch_nor_gymnasium(trained) -> None:
    _, path, *_ = trained
    code = ("import sys, numpy as np; from agents.deploy import OnnxPolicy; p = OnnxPolicy(sys.argv[1]); "
            "a = p.act(np.zeros((3, p.dim), np.float32)); "
            "heavy = [m for m in ('torch', 'gymnasium', 'stable_baselines3', 'envs', 'perception') if m in sys.modules]; "
            "print(a.shape, heavy)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3,) []"
