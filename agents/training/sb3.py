"""Training with stable-baselines3 (PPO by default; A2C and DQN selectable) on the batched env.

Training uses the training traces minus a validation share, and training scenes only; held-out test traces and
scenes are never seen. Every ``eval_freq`` steps the greedy policy is evaluated on fixed validation episodes
(paired, deterministic) and the best model is kept. Checkpoints are written atomically, and ``resume=True``
continues from the last one after a kill. Observations are already scaled by the feature module, so no
running normalisation is used (nothing extra has to travel with the model into ONNX).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation import Setup, Validation, condition_configs, deal
from agents.policies import LearnedPolicy, Policy
from offload_common.files import atomic_path

from .config import TrainConfig
from .runs import RunFolder, training_record


def _algo_class(name: str):
    import stable_baselines3 as sb3

    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN}[name]


def load_model(path: str | os.PathLike, algo: str = "ppo", env: Any = None) -> Any:
    """An SB3 model saved by ``train_sb3`` (on the CPU; ``env`` to continue training it)."""
    return _algo_class(algo).load(path, env=env, device="cpu")


@dataclass
class TrainResult:
    model_path: Path
    best_path: Path
    seconds: float
    history: list[dict[str, float]]
    timesteps: int


def train_sb3(setup: Setup, out_dir: str | os.PathLike, tcfg: TrainConfig = TrainConfig(), resume: bool = False,
              progress: bool = True, log=print, teacher: Policy | None = None) -> TrainResult:
    """Train on training traces (minus validation) and training scenes; writes model, best model, logs, curve.

    With ``tcfg.warm_start`` naming a reference, ``teacher`` is that (tuned) policy: a new run's network is first
    behaviour-cloned from it on the fitting traces (``warmstart.behaviour_clone``)."""
    if (tcfg.warm_start != "none") != (teacher is not None) or (teacher is not None
                                                                 and teacher.name != tcfg.warm_start):
        raise ValueError(f"TrainConfig.warm_start={tcfg.warm_start!r} needs the policy of that name as teacher, got "
                         f"{None if teacher is None else teacher.name!r}")
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecMonitor

    from envs import observation_spec, select_profile
    from envs.sb3 import SB3ConcatVecEnv, SB3OffloadVecEnv

    torch.set_num_threads(tcfg.threads)
    run = RunFolder(Path(out_dir), "sb3")
    out = run.root
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    run.record(out / "checkpoints", out / "tb")
    validation = Validation.create(setup, tcfg.val_fraction, tcfg.seed, tcfg.bandwidth_scales, tcfg.deadlines_ms)
    fit_traces, val_traces = validation.fit_traces, validation.val_traces
    train_cfg = setup.env_config("train").replace(**tcfg.env_overrides())
    part_cfgs = condition_configs(train_cfg, tcfg.deadlines_ms)
    if len(part_cfgs) == 1:
        batched = SB3OffloadVecEnv(tcfg.n_envs, setup.profile, fit_traces, train_cfg)
    else:  # one batched env per deadline, the n_envs devices shared out as evenly as they go
        sizes = [len(hand) for hand in deal(range(tcfg.n_envs), len(part_cfgs))]
        batched = SB3ConcatVecEnv([SB3OffloadVecEnv(n, setup.profile, fit_traces, cfg)
                                   for n, cfg in zip(sizes, part_cfgs)])
    venv = VecMonitor(batched)
    venv.seed(tcfg.seed)
    # the contract a deployment rebuilds: the observation at the env config's own deadline (the parts differ only
    # in theirs)
    spec = observation_spec(select_profile(setup.profile, train_cfg), train_cfg)

    def policy(model: Any) -> LearnedPolicy:
        return LearnedPolicy(model, tcfg.algo, "sb3")

    if resume and run.has_checkpoint():
        model = load_model(run.checkpoint, tcfg.algo, env=venv)
        state = run.read_state()
        log(f"resuming from {run.checkpoint} at {model.num_timesteps} steps")
        # the best score is read with the best model: validation runs more often than checkpoints, so the model in
        # best_model.zip can be newer and better than the best score the last checkpoint recorded
        if run.best.exists():
            best = load_model(run.best, tcfg.algo)
            state["best_accuracy"] = validation.accuracy(policy(best))
            log(f"best model on disk ({best.num_timesteps} steps) scores {state['best_accuracy']:.4f} on validation")
    else:
        model = _algo_class(tcfg.algo)("MlpPolicy", venv, device="cpu", verbose=0, tensorboard_log=str(out / "tb"),
                                       **tcfg.sb3_kwargs())
        state = {"best_accuracy": -1.0, "history": [], "seconds": 0.0}
        if teacher is not None:
            from .warmstart import behaviour_clone

            state["warm_start"] = behaviour_clone(model, setup.profile, fit_traces, part_cfgs, teacher, tcfg.seed,
                                                  tcfg.gamma)
            state["seconds"] = state["warm_start"]["seconds"]
            log(f"warm start: cloned {teacher.name} on {state['warm_start']['samples']:,} states "
                f"(agreement {state['warm_start']['agreement']:.3f}) in {state['warm_start']['seconds']} s")

    class _Callback(BaseCallback):
        """Validation on fixed episodes (best model kept) and atomic checkpoints."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval = (model.num_timesteps // tcfg.eval_freq + 1) * tcfg.eval_freq
            self.next_ckpt = (model.num_timesteps // tcfg.checkpoint_freq + 1) * tcfg.checkpoint_freq
            self.t0 = time.time()

        def _validate(self) -> None:
            acc = validation.accuracy(policy(self.model))
            ep_rew = [e["r"] for e in self.model.ep_info_buffer] if self.model.ep_info_buffer else [float("nan")]
            state["history"].append({"timesteps": int(self.num_timesteps), "val_accuracy": acc,
                                     "train_episode_reward": float(np.mean(ep_rew)),
                                     "wall_s": round(state["seconds"] + time.time() - self.t0, 1)})
            self.logger.record("eval/val_accuracy", acc)
            if acc > state["best_accuracy"]:
                state["best_accuracy"] = acc
                run.save(run.best, self.model.save)

        def _checkpoint(self) -> None:
            run.save_checkpoint(self.model.save, {**state, "seconds": state["seconds"] + time.time() - self.t0,
                                                  "timesteps": int(self.num_timesteps)})

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self._validate()
                self.next_eval += tcfg.eval_freq
            if self.num_timesteps >= self.next_ckpt:
                self._checkpoint()
                self.next_ckpt += tcfg.checkpoint_freq
            return True

        def _on_training_end(self) -> None:
            self._validate()
            state["seconds"] += time.time() - self.t0
            self.t0 = time.time()

    remaining = max(tcfg.timesteps - model.num_timesteps, 0)
    t_start = time.time()
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=_Callback(), progress_bar=progress,
                    reset_num_timesteps=not resume, tb_log_name=tcfg.algo)
    else:  # nothing to train: the history already ends at this model (validating again would repeat its last row)
        log(f"the run already has {model.num_timesteps:,} steps (--timesteps {tcfg.timesteps:,}): nothing to train")
    run.save(out / "model.zip", model.save)
    run.save_checkpoint(model.save, {**state, "timesteps": int(model.num_timesteps)})
    run.finish(training_record(
        setup, tcfg, spec, train_cfg.to_dict(), len(fit_traces), len(val_traces), state,
        seconds=round(state["seconds"], 1), timesteps=int(model.num_timesteps),
        this_session_s=round(time.time() - t_start, 1),
        **({"warm_start": state["warm_start"]} if "warm_start" in state else {})))
    plot_learning_curve(state["history"], out / "learning_curve.png", tcfg.algo)
    run.record(out / "learning_curve.png")
    return TrainResult(out / "model.zip", run.best, state["seconds"], state["history"], int(model.num_timesteps))


def plot_learning_curve(history: list[dict[str, float]], path: Path, algo: str) -> None:
    """Validation accuracy and training episode reward against environment steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    steps = [h["timesteps"] for h in history]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    h1 = ax.plot(steps, [h["val_accuracy"] for h in history], "o-", label="validation accuracy (left)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("validation accuracy")
    ax2 = ax.twinx()
    reward = [np.nan if h["train_episode_reward"] is None else h["train_episode_reward"] for h in history]  # null
    h2 = ax2.plot(steps, reward, "s--", color="C1",
                  label="training episode reward (right)")
    ax2.set_ylabel("train episode reward")
    ax.legend(handles=h1 + h2, loc="lower right", fontsize=8)
    ax.set_title(f"{algo.upper()} learning curve ({history[-1]['wall_s']:.0f} s wall clock)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
