"""RLlib: a one-iteration smoke test (default suite) and a multi-process kill-and-resume run (slow)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="install the 'rllib' extra")

from agents.evaluation import Setup, evaluate  # noqa: E402
from agents.training import TrainConfig, load_run_policy, train_rllib  # noqa: E402
from bandwidth_traces import shared_traces_dir  # noqa: E402
from envs import default_inputs  # noqa: E402
from perception import DEFAULT_PROFILE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _setup() -> tuple[Setup, str]:
    profile, traces = default_inputs()
    shared = shared_traces_dir()
    return Setup.create(profile, traces), str(shared) if shared else "embedded"


def test_rllib_smoke_one_iteration(tmp_path: Path) -> None:
    import ray

    setup, traces_source = _setup()
    cfg = TrainConfig(framework="rllib", iterations=1, num_env_runners=0, envs_per_runner=2, train_batch=256,
                      batch_size=128, n_epochs=1, episode_frames=50, checkpoint_every=1, net_arch=(32, 32))
    try:
        info = train_rllib(setup, tmp_path, str(DEFAULT_PROFILE), traces_source, cfg, log=lambda _: None)
    finally:
        ray.shutdown()
    assert info["ray_init_s"] > 0 and len(info["history"]) == 1 and info["history"][0]["env_steps"] >= 256
    policy = load_run_policy(tmp_path)
    with pytest.MonkeyPatch.context() as mp:  # a relative run folder, as the CLI gets it (`--runs runs/rllib`)
        mp.chdir(tmp_path.parent)
        assert load_run_policy(Path(tmp_path.name)).name == tmp_path.name
    res = evaluate(policy, setup.factory("test"), setup.test_traces[:4], episodes=1, seed=0)
    assert 0.0 <= res.metrics["all"]["accuracy"] <= 1.0
    assert set(np.unique(res.rollout.action)) <= set(range(len(setup.action_names())))
    # the RLModule exports to ONNX like an SB3 policy, with the same greedy actions
    from agents.deploy import OnnxPolicy, export_run

    onnx_policy = OnnxPolicy(export_run(tmp_path))
    env = setup.factory("test")(len(setup.test_traces), setup.test_traces)
    obs, _ = env.reset(seed=0)
    assert np.abs(onnx_policy.logits(obs) - policy.logits(obs)).max() < 1e-4
    assert np.array_equal(onnx_policy.act(obs), policy.act(obs))
    assert onnx_policy.metadata["algorithm"].startswith("RLlib")
    # an RLlib run records what an SB3 run does (env config, observation spec) and deploys as a device bundle
    from agents.deploy import DeviceController, write_bundle
    from offload_common.files import read_json
    from offload_common.observation import ObservationSpec

    info = read_json(tmp_path / "train.json")
    assert ObservationSpec.from_dict(info["observation_spec"]) == env.observation_spec
    assert info["env_config"]["episode_frames"] == 50
    ctl = DeviceController.from_bundle(write_bundle(tmp_path, tmp_path / "bundle", profile=DEFAULT_PROFILE))
    d = ctl.step(np.zeros((336, 448, 3), np.uint8), 0.0)
    assert d.action == int(onnx_policy.act(d.observation[None])[0])


@pytest.mark.slow
def test_rllib_two_env_runners_resume_after_kill(tmp_path: Path) -> None:
    out = tmp_path / "rl"
    cmd = [sys.executable, "train_agent.py", "train", "--framework", "rllib", "--num-env-runners", "2",
           "--iterations", "40", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state = out / "state.json"
    deadline = time.time() + 400
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["iterations"] >= 10):
        time.sleep(2)
    import os

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["iterations"]
    assert done >= 10
    resumed = subprocess.run(cmd[:-4] + ["--iterations", str(done + 5), "--out", str(out), "--resume"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    info = json.loads((out / "train.json").read_text())
    assert info["history"][-1]["iteration"] == done + 5 and len(info["history"]) == done + 5
