"""The main job end to end on a short budget, and training resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train_agent.py", *args], cwd=ROOT, capture_output=True, text=True)


def test_main_job_produces_model_report_and_onnx(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _cli("run", "--timesteps", "4096", "--episodes", "1", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| ppo |" in proc.stdout and "Paired difference to the best tuned heuristic" in proc.stdout
    for name in ("config.json", "model.zip", "best_model.zip", "train.json", "report.json", "report.md",
                 "learning_curve.png", "accuracy_per_family.png", "policy.onnx"):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    assert {"ppo", "cbo", "local", "oracle"} <= set(report)
    from agents.training import load_model

    assert load_model(out / "best_model.zip").num_timesteps >= 4096
    assert list((out / "tb").iterdir()), "TensorBoard logs"


def test_resume_continues_from_the_last_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "train"
    first = _cli("train", "--timesteps", "4096", "--out", str(out), "--no-progress")
    assert first.returncode == 0, first.stderr[-3000:]
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["timesteps"] >= 4096
    again = _cli("train", "--timesteps", "8192", "--out", str(out), "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    info = json.loads((out / "train.json").read_text())
    assert 8192 <= info["timesteps"] < 8192 + 4096  # continued, not restarted from zero
    assert len(info["history"]) > len(state["history"])


def test_a2c_and_dqn_train_reload_and_export(tmp_path: Path) -> None:
    import numpy as np

    from agents.deploy import OnnxPolicy, export_run
    from agents.evaluation import Setup
    from agents.training import TrainConfig, load_run_policy, train_sb3
    from envs import default_inputs

    profile, traces = default_inputs()
    setup = Setup.create(profile, traces)
    obs = None
    for algo in ("a2c", "dqn"):
        out = tmp_path / algo
        train_sb3(setup, out, TrainConfig(algo=algo, timesteps=1024, n_envs=8, eval_freq=512,
                                          checkpoint_freq=512, net_arch=(32, 32)), progress=False)
        policy = load_run_policy(out)
        assert type(policy.model).__name__.lower() == algo
        if obs is None:
            env = setup.factory("test")(8, setup.test_traces[:8])
            obs, _ = env.reset(seed=0)
        assert np.array_equal(OnnxPolicy(export_run(out)).act(obs), policy.act(obs))
