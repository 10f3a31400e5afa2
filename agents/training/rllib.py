"""RLlib PPO (new API stack: RLModule, Learner, EnvRunners) on the same env, config, profile and traces.

Runs on this machine (a local Ray instance, dashboard off, loopback only) or joins a Ray cluster (``address``);
starting or joining Ray, with its token authentication, is ``ray_cluster``'s.
EnvRunners are separate processes, so each builds its env from paths and the exact list of training trace
names; failed EnvRunners are restarted instead of ending training. Checkpoints are written after every few
iterations (to a temporary folder, then swapped in), and ``resume=True`` restores the last one. The trained
RLModule is read back as an ``agents.policies.LearnedPolicy`` so the same evaluation and report apply. Settings come
from the shared ``TrainConfig`` (``rllib_training``), bookkeeping from the shared ``RunFolder``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation import Validation
from agents.policies import LearnedPolicy
from offload_common.files import record_files, write_json

from .config import TrainConfig
from .ray_cluster import init_ray
from .ray_tasks import WorkerInputs
from .runs import RunFolder, training_record

ENV_NAME = "offload-gym-FrameOffload"


def make_env(env_config: dict[str, Any]):
    """EnvRunner-side constructor: profile and traces from paths, the listed trace names only (``WorkerInputs``)."""
    from envs import EnvConfig, OffloadEnv

    inputs = WorkerInputs(env_config["profile"], env_config["traces"], env_config["trace_seed"],
                          tuple(env_config["trace_names"]))
    return OffloadEnv(inputs.load_profile(), inputs.load_traces(), EnvConfig.from_dict(env_config["config"]))


def register() -> None:
    from ray.tune.registry import register_env

    register_env(ENV_NAME, make_env)


def build_config(setup: Any, profile_path: str, traces_source: str, cfg: TrainConfig,
                 fit_traces: Sequence[Any] | None = None):
    """The PPOConfig over the training traces (minus validation) and training scenes.

    ``traces_source`` is what ``bandwidth_traces.default_traces`` reloads on every EnvRunner: a path, or
    ``"embedded"`` (regenerated with ``cfg.seed``, as the driver did).
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    fit = fit_traces if fit_traces is not None else Validation.create(setup, cfg.val_fraction, cfg.seed).fit_traces
    env_cfg = setup.env_config("train").replace(**cfg.env_overrides())
    env_config = {"profile": profile_path, "traces": traces_source, "trace_seed": cfg.seed,
                  "config": env_cfg.to_dict(), "trace_names": [f"{t.family}/{t.name}" for t in fit]}
    register()
    return (PPOConfig()
            .environment(ENV_NAME, env_config=env_config)
            .env_runners(num_env_runners=cfg.num_env_runners, num_envs_per_env_runner=cfg.envs_per_runner,
                         rollout_fragment_length="auto")
            .learners(num_learners=0)
            .training(**cfg.rllib_training())
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(cfg.net_arch), fcnet_activation="tanh"))
            .fault_tolerance(restart_failed_env_runners=True, max_num_env_runner_restarts=100)
            .debugging(seed=cfg.seed))


def load_module(run_dir: str | os.PathLike) -> tuple[Any, Path]:
    """The RLModule of a run (its best-on-validation checkpoint, else the last) without a Ray cluster, and where it
    came from. ``run_dir`` may also be a checkpoint folder itself."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    run = Path(run_dir).resolve()  # Ray reads checkpoints by URI: a relative path has no scheme and is refused
    tail = Path("learner_group") / "learner" / "rl_module" / "default_policy"
    for root in (run, run / "best", run / "checkpoint"):
        if (root / tail).exists():
            return RLModule.from_checkpoint(root / tail), root
    raise FileNotFoundError(f"no RLlib checkpoint module under {run} (looked for best/ and checkpoint/)")


def _env_runner_nodes(algo: Any) -> list[str]:
    """Ray node id of each remote EnvRunner (where sampling really ran; empty when sampling is local)."""
    import ray

    group = getattr(algo, "env_runner_group", None)
    if group is None or group.num_remote_env_runners() == 0:
        return []
    return sorted(set(group.foreach_env_runner(lambda _: ray.get_runtime_context().get_node_id(),
                                               local_env_runner=False)))


def train_rllib(setup: Any, out_dir: str | os.PathLike, profile_path: str, traces_source: str,
                cfg: TrainConfig = TrainConfig(framework="rllib"), address: str | None = None, resume: bool = False,
                log=print) -> dict[str, Any]:
    """Train; returns timing and per-iteration results (also written to out_dir/train.json)."""
    run = RunFolder(Path(out_dir), "rllib")
    out = run.root
    out.mkdir(parents=True, exist_ok=True)
    init_s = init_ray(address)
    log(f"ray.init: {init_s:.1f} s")
    t_build = time.time()
    validation = Validation.create(setup, cfg.val_fraction, cfg.seed, episodes=cfg.val_episodes)
    algo = build_config(setup, profile_path, traces_source, cfg, validation.fit_traces).build_algo()
    build_s = time.time() - t_build

    def save_algo(path: Path) -> None:
        algo.save_to_path(str(path.resolve()))

    def policy(module: Any) -> LearnedPolicy:
        return LearnedPolicy(module, cfg.method, "rllib")

    state: dict[str, Any] = {"iterations": 0, "history": [], "best_accuracy": -1.0}
    if resume and run.has_checkpoint():
        algo.restore_from_path(str(run.checkpoint.resolve()))
        state = {**state, **run.read_state()}
        log(f"resumed from {run.checkpoint} after iteration {state['iterations']}")
        if run.best.exists():  # the best score is read with the best model, not from the checkpoint's state
            state["best_accuracy"] = validation.accuracy(policy(load_module(run.best)[0]))
    history: list[dict[str, Any]] = state["history"]
    for it in range(state["iterations"], cfg.iterations):
        t0 = time.time()
        result = algo.train()
        iter_s = time.time() - t0
        runners = result.get("env_runners", {})
        row = {"iteration": it + 1, "seconds": round(iter_s, 2),
               "env_steps": int(runners.get("num_env_steps_sampled_lifetime", 0)),
               "episode_return_mean": float(runners.get("episode_return_mean", float("nan")))}
        history.append(row)
        if (it + 1) % cfg.checkpoint_every == 0 or it + 1 == cfg.iterations:
            acc = validation.accuracy(policy(algo.get_module()))
            row["val_accuracy"] = acc
            better = acc > state["best_accuracy"]
            state["best_accuracy"] = max(acc, state["best_accuracy"])
            run.save_checkpoint(save_algo, {**state, "iterations": it + 1, "history": history})
            if better:  # the checkpoint just written is the best: copy it rather than save the algorithm twice
                run.save(run.best, lambda tmp: shutil.copytree(run.checkpoint, tmp, dirs_exist_ok=True))
        log(f"iteration {it + 1}/{cfg.iterations}: {iter_s:.1f} s, return {row['episode_return_mean']:.2f}"
            + (f", validation accuracy {row['val_accuracy']:.4f}" if "val_accuracy" in row else ""))
    runner_nodes = _env_runner_nodes(algo)
    algo.stop()
    env_cfg = setup.env_config("train").replace(**cfg.env_overrides())  # what every EnvRunner's env was built with
    info = training_record(
        setup, cfg, _observation_spec(setup, env_cfg, validation.fit_traces), env_cfg.to_dict(),
        len(validation.fit_traces), len(validation.val_traces), state, ray_init_s=round(init_s, 2),
        build_s=round(build_s, 2),
        seconds_per_iteration=float(np.median([h["seconds"] for h in history])) if history else None,
        address=address or "local", env_runner_nodes=runner_nodes, driver_node=_driver_node())
    run.finish(info)
    return info


def _observation_spec(setup: Any, env_cfg: Any, traces: Sequence[Any]):
    """The ObservationSpec of the env the EnvRunners sampled in (the same profile and config, built here)."""
    from envs import OffloadVectorEnv

    return OffloadVectorEnv(1, setup.profile, list(traces), env_cfg).observation_spec


def _driver_node() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def tune_sweep(setup: Any, out_dir: str | os.PathLike, profile_path: str, traces_source: str,
               cfg: TrainConfig, address: str | None = None) -> dict[str, Any]:
    """A small Ray Tune grid over learning rate and entropy coefficient; returns each trial's final return.

    On a local Ray (no ``address``) each trial samples in its own process (no extra EnvRunners) and trials run
    one at a time: a trial asking for 1 + num_env_runners CPUs would otherwise never be scheduled on 2 cores.
    """
    from ray import tune

    init_ray(address)
    if address is None:
        cfg = cfg.replace(num_env_runners=0)
    base = build_config(setup, profile_path, traces_source, cfg)
    space = base.training(lr=tune.grid_search([1e-4, 3e-4]), entropy_coeff=tune.grid_search([0.01, 0.02]))
    tuner = tune.Tuner("PPO", param_space=space,
                       tune_config=tune.TuneConfig(max_concurrent_trials=None if address else 1),
                       run_config=tune.RunConfig(stop={"training_iteration": cfg.iterations},
                                                 storage_path=str(Path(out_dir).resolve() / "tune"), verbose=0))
    grid = tuner.fit()
    def ret(r: Any) -> float | None:
        value = r.metrics.get("env_runners", {}).get("episode_return_mean")
        return None if value is None else float(value)

    rows = [{"lr": r.config["lr"], "entropy_coeff": r.config["entropy_coeff"], "episode_return_mean": ret(r)}
            for r in grid]
    write_json(Path(out_dir) / "tune.json", rows)
    record_files(Path(out_dir), ["tune.json", "tune"])
    return {"trials": rows}
