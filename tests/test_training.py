"""The main job end to end on a short budget, and training resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train_agent.py", *args], cwd=ROOT, capture_output=True, text=True)


def test_main_job_produces_model_report_and_onnx(shared_traces: Path, tmp_path: Path) -> None:
    # the default main job (mixture of speeds, warm start from the learned-greedy it tunes) on a few real traces of
    # two families: tuning on all of ../shared takes minutes, and the slow test in test_results.py runs that
    traces = tmp_path / "traces"
    for family in ("fcc", "norway-hsdpa"):
        (traces / family).mkdir(parents=True)
        for src in sorted((shared_traces / family).iterdir())[:5]:
            shutil.copyfile(src, traces / family / src.name)
    out = tmp_path / "run"
    proc = _cli("run", "--timesteps", "4096", "--episodes", "1", "--traces", str(traces), "--out", str(out),
                "--no-progress")
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
    # the main job clones the learned-greedy it tuned before PPO starts (its default warm start)
    info = json.loads((out / "train.json").read_text())
    assert info["train_config"]["warm_start"] == "learned-greedy" and info["warm_start"]["teacher"] == "learned-greedy"


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


def test_training_on_scaled_bandwidth_fits_and_validates_on_every_scale() -> None:
    from agents.evaluation import Setup, Validation
    from envs import default_inputs

    profile, traces = default_inputs()
    setup = Setup.create(profile, traces)
    plain = Validation.create(setup, 0.2, 0)
    scaled = Validation.create(setup, 0.2, 0, (0.5, 2.0))
    assert len(scaled.fit_traces) == 2 * len(plain.fit_traces) and len(scaled.val_traces) == 2 * len(plain.val_traces)
    n = len(plain.val_traces)
    for k, factor in enumerate((0.5, 2.0)):
        for base, t in zip(plain.val_traces, scaled.val_traces[k * n:(k + 1) * n]):
            assert (t.family, t.name) == (base.family, base.name)
            assert t.mean_mbps == base.mean_mbps * factor or abs(t.mean_mbps / base.mean_mbps - factor) < 1e-9
    assert [p.env.num_envs for p in scaled.parts] == [2 * n]  # one validation episode per scaled trace


def test_more_validation_episodes_keep_the_single_episode_and_add_others() -> None:
    import numpy as np
    import pytest

    from agents.evaluation import Setup, Validation
    from agents.training import TrainConfig
    from envs import default_inputs

    profile, traces = default_inputs()
    setup = Setup.create(profile, traces)
    one = Validation.create(setup, 0.2, 0).parts[0].episodes
    three = Validation.create(setup, 0.2, 0, episodes=3).parts[0].episodes
    n = len(one.trace)
    assert len(three.trace) == 3 * n and np.array_equal(three.trace, np.repeat(one.trace, 3))
    assert np.array_equal(three.start_s[::3], one.start_s)  # each trace's first episode is the single one
    assert all(np.array_equal(a, b) for a, b in zip(three.pieces[::3], one.pieces))
    assert len(set(np.round(three.start_s[:3], 6))) == 3  # the others start elsewhere
    with pytest.raises(ValueError, match="episodes=0: expected an int >= 1"):
        Validation.create(setup, 0.2, 0, episodes=0)
    with pytest.raises(ValueError, match="val_episodes=0"):
        TrainConfig(val_episodes=0)


def test_scaled_training_flag_is_checked_before_loading(tmp_path: Path) -> None:
    bad = _cli("train", "--train-bandwidth-scales", "0.5,0", "--out", str(tmp_path / "a"))
    assert bad.returncode == 2 and "--train-bandwidth-scales" in bad.stderr
    rllib = _cli("train", "--framework", "rllib", "--train-bandwidth-scales", "0.5,1", "--out", str(tmp_path / "b"))
    assert rllib.returncode == 2 and "bandwidth_scales" in rllib.stderr and "RLlib" in rllib.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_recurrent_ppo_trains_keeps_state_per_row_and_refuses_export(tmp_path: Path) -> None:
    import numpy as np
    import pytest

    from agents.deploy import export_run
    from agents.evaluation import Setup, evaluate
    from agents.training import TrainConfig, load_run_policy, train_sb3
    from envs import default_inputs

    with pytest.raises(ValueError, match="feed-forward actor-critics"):
        TrainConfig(algo="recurrent-ppo", warm_start="cachenet")
    profile, traces = default_inputs()
    setup = Setup.create(profile, traces)
    out = tmp_path / "rec"
    train_sb3(setup, out, TrainConfig(algo="recurrent-ppo", timesteps=1024, n_envs=8, n_steps=64, batch_size=256,
                                      eval_freq=512, checkpoint_freq=512, net_arch=(16,), lstm_hidden=8),
              progress=False)
    policy = load_run_policy(out)
    assert policy.recurrent and type(policy.model).__name__ == "RecurrentPPO"
    import torch

    torch.manual_seed(0)  # large random actor weights: 1,024 steps leave actions that barely depend on the state
    actor = policy.model.policy
    with torch.no_grad():
        for p in [*actor.lstm_actor.parameters(), *actor.mlp_extractor.policy_net.parameters(),
                  *actor.action_net.parameters()]:
            p.normal_(0.0, 2.0)
    env = setup.factory("test")(4, setup.test_traces[:4])
    obs, _ = env.reset(seed=0)
    seq = [obs]
    for _ in range(8):
        obs, *_ = env.step(np.zeros(4, dtype=np.int64))
        seq.append(obs)
    policy.reset()
    together = np.stack([policy.act(o) for o in seq])
    fresh = []
    for o in seq:
        policy.reset()
        fresh.append(policy.act(o))
    assert (together != np.stack(fresh)).any()  # the state carries the episode so far into each decision
    # ... kept per row: four rows stepped together act as each row stepped alone
    for row in range(4):
        policy.reset()
        alone = [policy.act(o[row:row + 1])[0] for o in seq]
        assert list(together[:, row]) == alone
    # reset starts every row afresh: an evaluation repeats exactly
    a = evaluate(policy, setup.factory("test"), setup.test_traces[:4], episodes=1, seed=3)
    b = evaluate(policy, setup.factory("test"), setup.test_traces[:4], episodes=1, seed=3)
    assert a.metrics["all"]["accuracy"] == b.metrics["all"]["accuracy"]
    # a recurrent policy has no feed-forward path to export: refused before any file is written
    with pytest.raises(ValueError, match="recurrent policy carries LSTM state"):
        export_run(out)
    assert not (out / "policy.onnx").exists()
