"""ONNX export and the device runtime: parity with PyTorch, same evaluation, clear errors, no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from agents.deploy import DeviceFeatures, OnnxPolicy, export_model, torch_logits
from agents.evaluation import evaluate, make_episodes
from agents.policies import LearnedPolicy
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
    export_model(model, path, venv.core.spec.field_names, venv.core.spec.action_names,
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
    assert np.array_equal(pol.act(obs), LearnedPolicy(model, "ppo", "sb3").act(obs))


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
    a = evaluate(LearnedPolicy(model, "ppo", "sb3"), factory, some, episodes=2, seed=3)
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


def test_device_features_reproduce_the_env_observation_on_10000_observations(trained) -> None:
    _, path, profile, traces, cfg = trained
    env = OffloadVectorEnv(100, profile, traces, cfg)
    spec = env.core.spec
    dev = DeviceFeatures(spec.top_k, spec.history, spec.resolutions, spec.deadline_s, spec.remote_rtt_s,
                         spec.remote_compute_s, spec.max_queue, spec.prior_mbps)
    assert dev.field_names == env.observation_fields == OnnxPolicy(path).observation_fields
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=3)
    checked = 0
    for _ in range(100):  # through autoresets (episodes of 64 frames), offloads, queues and measurements
        sig = env.core.device_signals()
        signals = dev.signals(env.num_envs)
        for name in signals.dtype.names:  # the device fills its own record from its own readings
            signals[name] = sig["signals"][name]
        device = dev(sig["topk_prob"], sig["remote_kb"], sig["dist"], sig["meas_mbps"], signals)
        assert np.allclose(device, obs, rtol=0, atol=1e-6)
        checked += len(obs)
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, env.num_envs))
    assert checked >= 10_000


def test_paired_episodes_pin_scene_pieces(trained) -> None:
    _, _, profile, traces, cfg = trained
    env = OffloadVectorEnv(8, profile, traces[:4], cfg.replace(trace_split="all"))
    a = make_episodes(env, 2, seed=5)  # 4 traces x 2 repetitions
    b = make_episodes(env, 2, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a.pieces, b.pieces))
    assert not np.array_equal(a.pieces[0], a.pieces[1])
    env.pin_episodes(a.trace, a.start_s, a.pieces)
    frames = np.array([env.step(np.zeros(8, np.int64))[4]["frame"] for _ in range(cfg.episode_frames)])
    for e in (0, 5):
        p = a.pieces[e]
        first = env.core.scene_start[p[:, 0]] + p[:, 1]
        want = np.concatenate([np.arange(s, s + n) for s, n in zip(first, p[:, 2])])[:cfg.episode_frames]
        assert np.array_equal(frames[:, e], want)


HEAVY = ("torch", "gymnasium", "stable_baselines3", "numba", "envs", "perception", "ray")


def test_device_runtime_imports_neither_torch_nor_gymnasium(trained, device_run) -> None:
    _, path, *_ = trained
    code = ("import sys, numpy as np; from agents.deploy import OnnxPolicy; p = OnnxPolicy(sys.argv[1]); "
            "a = p.act(np.zeros((3, p.dim), np.float32)); "
            f"heavy = [m for m in {HEAVY} if m in sys.modules]; "
            "print(a.shape, heavy)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3,) []"
    # the device controller, from a bundle, with the bundle's policy and with each NumPy heuristic, on a frame
    code = ("import sys, numpy as np; from agents.deploy import DeviceController; "
            "from agents.policies import CacheNetPolicy, CBOCondPolicy, CBOPolicy; "
            "frame = np.random.default_rng(0).integers(0, 256, (336, 448, 3), dtype=np.uint8); "
            "pols = [None, CBOPolicy(np.full(4, 0.7), 0.78), CBOCondPolicy(), CacheNetPolicy()]; "
            "acts = [DeviceController.from_bundle(sys.argv[1], policy=p).step(frame, 0.0).action for p in pols]; "
            f"heavy = [m for m in {HEAVY} if m in sys.modules]; "
            "print(len(acts), heavy)")
    out = subprocess.run([sys.executable, "-c", code, str(device_run["bundle"])], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4 []"
