"""Shared fixtures: where the real data in ../shared lives (tests that need it skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bandwidth_traces import shared_traces_dir


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    path = shared_traces_dir()
    if path is None:
        pytest.skip("../shared/traces not present")
    return path


@pytest.fixture(scope="session")
def device_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny SB3 run on the committed profile (send buffer of 2 uploads, so the device's refusals are exercised)
    and its device bundle, shared by the bundle and controller tests (training is the slow part)."""
    from agents.deploy import write_bundle
    from agents.evaluation import Setup
    from agents.training import TrainConfig, prepare_run_dir, train_sb3
    from envs import EnvConfig, default_inputs
    from perception import DEFAULT_PROFILE

    profile, traces = default_inputs()
    setup = Setup.create(profile, traces[:40], EnvConfig(max_queue=2, episode_frames=64))
    root = tmp_path_factory.mktemp("device")
    run = root / "run"
    # the CLI's order: config.json (naming the profile) first, then training
    prepare_run_dir(run, {"framework": "sb3", "profile": str(DEFAULT_PROFILE), "env_config": setup.config.to_dict()},
                    resume=False, force=False, has_checkpoint=lambda _: False)
    train_sb3(setup, run, TrainConfig(timesteps=256, n_envs=4, eval_freq=256, checkpoint_freq=256, net_arch=(16, 16),
                                      threads=1), progress=False, log=lambda _: None)
    bundle = write_bundle(run, root / "bundle")
    return {"run": run, "bundle": bundle, "profile": profile, "traces": traces, "setup": setup}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1,024-step PPO run made by `train` (one per test module that asks for it)."""
    from helpers import SMALL

    import train_agent

    out = tmp_path_factory.mktemp("trained") / "run"
    assert train_agent.main(["train", *SMALL, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Path:
    """A copy of ``trained`` to damage or overwrite (without the lock the copying process held)."""
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    (dst / ".offload-gym.lock").unlink(missing_ok=True)
    return dst

