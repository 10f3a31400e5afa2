"""Training with stable-baselines3 (PPO by default; A2C and DQN selectable) on the batched env.

Training uses the training traces minus a validation share, and training clips only; held-out test traces and
clips are never seen. Every ``eval_freq`` steps the greedy policy is evaluated on fixed validation episodes
(paired, deterministic) and the best model is kept. Checkpoints are written atomically, and ``resume=True``
continues from the last one after a kill. Observations are already scaled by the feature module, so no
running normalisation is used (nothing extra has to travel with the model into ONNX).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .files import read_json, write_json
from .policy import Policy
from .suite import Setup, Validation

ALGOS = ("ppo", "a2c", "dqn")


@dataclass(frozen=True)
class TrainConfig:
    """What and how long to train. Defaults fit the main job's 15-minute budget on 2 CPU cores."""

    algo: str = "ppo"
    timesteps: int = 1_500_000
    n_envs: int = 32
    seed: int = 0
    eval_freq: int = 100_000  # env steps between validation evaluations
    checkpoint_freq: int = 100_000
    val_fraction: float = 0.2  # share of training traces held out for validation
    reward_baseline: str = "local"  # see EnvConfig.reward_baseline: same optimum, less noise
    gamma: float = 0.9  # the uplink backlog couples decisions over ~10 frames at most
    learning_rate: float = 3e-4
    net_arch: tuple[int, ...] = (256, 256)
    # ent_coef 0.005 collapsed to flooding the uplink by 50k steps (validation 0.647); 0.02 keeps exploring
    ppo: dict[str, Any] = field(default_factory=lambda: {"n_steps": 128, "batch_size": 1024, "n_epochs": 10,
                                                         "gae_lambda": 0.9, "ent_coef": 0.02, "clip_range": 0.2})
    threads: int = 2

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"TrainConfig.algo={self.algo!r}: expected one of {ALGOS}")
        if self.timesteps < 1 or self.n_envs < 1:
            raise ValueError("TrainConfig.timesteps and n_envs must be >= 1")


class SB3Policy(Policy):
    """A trained SB3 model as a ``Policy`` (greedy actions)."""

    def __init__(self, model: Any, name: str = "ppo"):
        self.model = model
        self.name = name

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        action, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(action, dtype=np.int64).reshape(len(obs))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "algo": type(self.model).__name__}


def _algo_class(name: str):
    import stable_baselines3 as sb3

    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN}[name]


def load_sb3_policy(path: str | os.PathLike, name: str | None = None) -> SB3Policy:
    """Load a model saved by ``train_sb3`` (the algorithm is read from the run's train.json when present)."""
    path = Path(path)
    meta_path = path.parent / "train.json"
    algo = read_json(meta_path, "training record")["train_config"]["algo"] if meta_path.exists() else "ppo"
    return SB3Policy(_algo_class(algo).load(path, device="cpu"), name or algo)


def _atomic_save(model: Any, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


@dataclass
class TrainResult:
    model_path: Path
    best_path: Path
    seconds: float
    history: list[dict[str, float]]
    timesteps: int


def train_sb3(setup: Setup, out_dir: str | os.PathLike, tcfg: TrainConfig = TrainConfig(), resume: bool = False,
              progress: bool = True, log=print) -> TrainResult:
    """Train on training traces (minus validation) and training clips; writes model, best model, logs, curve."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecMonitor

    from envs.sb3 import SB3OffloadVecEnv

    torch.set_num_threads(tcfg.threads)
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    validation = Validation.create(setup, tcfg.val_fraction, tcfg.seed)
    fit_traces, val_traces = validation.fit_traces, validation.val_traces
    train_cfg = setup.env_config("train").replace(reward_baseline=tcfg.reward_baseline)
    venv = VecMonitor(SB3OffloadVecEnv(tcfg.n_envs, setup.profile, fit_traces, train_cfg))
    venv.seed(tcfg.seed)
    state_path = out / "checkpoints" / "state.json"
    last_path = out / "checkpoints" / "last.zip"
    algo_cls = _algo_class(tcfg.algo)

    if resume and last_path.exists():
        model = algo_cls.load(last_path, env=venv, device="cpu")
        state = read_json(state_path, "checkpoint state")
        log(f"resuming from {last_path} at {model.num_timesteps} steps")
        # the best score is read with the best model: validation runs more often than checkpoints, so the model in
        # best_model.zip can be newer and better than the best score the last checkpoint recorded
        if (out / "best_model.zip").exists():
            best = algo_cls.load(out / "best_model.zip", device="cpu")
            state["best_accuracy"] = validation.accuracy(SB3Policy(best))
            log(f"best model on disk ({best.num_timesteps} steps) scores {state['best_accuracy']:.4f} on validation")
    else:
        kwargs: dict[str, Any] = {"gamma": tcfg.gamma, "learning_rate": tcfg.learning_rate, "seed": tcfg.seed,
                                  "device": "cpu", "verbose": 0, "tensorboard_log": str(out / "tb"),
                                  "policy_kwargs": {"net_arch": list(tcfg.net_arch)}}
        if tcfg.algo == "ppo":
            kwargs.update(tcfg.ppo)
        elif tcfg.algo == "a2c":
            kwargs.update({"n_steps": 16})
        else:
            kwargs.update({"buffer_size": 200_000, "learning_starts": 10_000, "batch_size": 256,
                           "train_freq": 4, "exploration_fraction": 0.2, "target_update_interval": 2_000})
        model = algo_cls("MlpPolicy", venv, **kwargs)
        state = {"best_accuracy": -1.0, "history": [], "seconds": 0.0}

    class _Callback(BaseCallback):
        """Validation on fixed episodes (best model kept) and atomic checkpoints."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval = (model.num_timesteps // tcfg.eval_freq + 1) * tcfg.eval_freq
            self.next_ckpt = (model.num_timesteps // tcfg.checkpoint_freq + 1) * tcfg.checkpoint_freq
            self.t0 = time.time()

        def _validate(self) -> None:
            acc = validation.accuracy(SB3Policy(self.model))
            ep_rew = [e["r"] for e in self.model.ep_info_buffer] if self.model.ep_info_buffer else [float("nan")]
            state["history"].append({"timesteps": int(self.num_timesteps), "val_accuracy": acc,
                                     "train_episode_reward": float(np.mean(ep_rew)),
                                     "wall_s": round(state["seconds"] + time.time() - self.t0, 1)})
            self.logger.record("eval/val_accuracy", acc)
            if acc > state["best_accuracy"]:
                state["best_accuracy"] = acc
                _atomic_save(self.model, out / "best_model.zip")

        def _checkpoint(self) -> None:
            _atomic_save(self.model, last_path)
            write_json(state_path, {**state, "seconds": state["seconds"] + time.time() - self.t0,
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
    cb = _Callback()
    model.learn(total_timesteps=remaining, callback=cb, progress_bar=progress, reset_num_timesteps=not resume,
                tb_log_name=tcfg.algo)
    _atomic_save(model, out / "model.zip")
    _atomic_save(model, last_path)
    write_json(state_path, {**state, "timesteps": int(model.num_timesteps)})
    spec = venv.venv.observation_spec
    write_json(out / "train.json", {"train_config": asdict(tcfg), "env_config": train_cfg.to_dict(),
                                     "observation_fields": spec.field_names, "action_names": spec.action_names,
                                     "profile_models": setup.profile.meta.get("models", {}),
                                     "profile_weights_sha256": setup.profile.meta.get("weights_sha256", {}),
                                     "fit_traces": len(fit_traces), "val_traces": len(val_traces),
                                     "seconds": round(state["seconds"], 1), "timesteps": int(model.num_timesteps),
                                     "best_val_accuracy": state["best_accuracy"], "history": state["history"],
                                     "this_session_s": round(time.time() - t_start, 1)})
    plot_learning_curve(state["history"], out / "learning_curve.png", tcfg.algo)
    return TrainResult(out / "model.zip", out / "best_model.zip", state["seconds"], state["history"],
                       int(model.num_timesteps))


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
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
