"""Training with stable-baselines3 (PPO by default; A2C, DQN and sb3-contrib's RecurrentPPO selectable) on the batched env.

Training uses the training traces minus a validation share, and training scenes only; held-out test traces and
scenes are never seen. Every ``eval_freq`` steps the greedy policy is evaluated on fixed validation episodes
(paired, deterministic) and the best model is kept. Checkpoints are written atomically, and ``resume=True``
continues from the last one after a kill. Observations are already scaled by the feature module, so no
running normalisation is used (nothing extra has to travel with the model into ONNX).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
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

    if name == "recurrent-ppo":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO
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
              progress: bool = True, log=print, teacher: Policy | None = None,
              curriculum: Sequence[Sequence[Policy]] | None = None,
              scale_teachers: Sequence[Policy] | None = None) -> TrainResult:
    """Train on training traces (minus validation) and training scenes; writes model, best model, logs, curve.

    With ``tcfg.warm_start`` naming a reference, ``teacher`` is that (tuned) policy: a new run's network is first
    behaviour-cloned from it on the fitting traces (``warmstart.behaviour_clone``). With
    ``tcfg.warm_start_per_scale``, ``scale_teachers`` replaces it: per training scale, that reference re-tuned
    there, each cloned on its own scale's fitting traces.

    With ``tcfg.curriculum_rounds`` R > 0, ``curriculum`` holds, per training scale, the references re-tuned at
    that scale (``agents.evaluation.scale_references``). Training runs in R + 1 equal phases; after each but the
    last, every scale's gap (its best reference's validation accuracy minus the policy's, on that scale's
    validation episodes) is measured and the scale with the largest gap has its fitting files drawn once more
    often from then on (Genet's rule: train where the policy trails the rule-based baseline most). Each round is
    recorded in ``train.json``'s ``curriculum``."""
    teachers = [teacher] if scale_teachers is None else list(scale_teachers)
    if tcfg.warm_start_per_scale:
        if teacher is not None or len(teachers) != len(tcfg.bandwidth_scales) or any(
                t.name != tcfg.warm_start for t in teachers):
            raise ValueError(f"TrainConfig.warm_start_per_scale needs scale_teachers: {tcfg.warm_start!r} re-tuned at "
                             f"each of the {len(tcfg.bandwidth_scales)} bandwidth scales (and no single teacher), got "
                             f"{[None if t is None else t.name for t in teachers]}")
    elif scale_teachers is not None or (tcfg.warm_start != "none") != (teacher is not None) or (
            teacher is not None and teacher.name != tcfg.warm_start):
        raise ValueError(f"TrainConfig.warm_start={tcfg.warm_start!r} needs the policy of that name as teacher, got "
                         f"{None if teacher is None else teacher.name!r}"
                         + (" and scale_teachers without warm_start_per_scale" if scale_teachers is not None else ""))
    if bool(tcfg.curriculum_rounds) != (curriculum is not None) or (
            curriculum is not None and len(curriculum) != len(tcfg.bandwidth_scales)):
        raise ValueError(f"TrainConfig.curriculum_rounds={tcfg.curriculum_rounds} needs the re-tuned references at "
                         f"each of the {len(tcfg.bandwidth_scales)} bandwidth scales as curriculum, got "
                         f"{None if curriculum is None else len(curriculum)} scale(s)")
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecMonitor

    from envs import observation_spec, select_profile
    from envs.sb3 import SB3ConcatVecEnv, SB3OffloadVecEnv

    torch.set_num_threads(tcfg.threads)
    train_cfg = setup.env_config("train").replace(**tcfg.env_overrides())
    # the contract a deployment rebuilds: the observation at the env config's own deadline (the parts differ only
    # in theirs)
    spec = observation_spec(select_profile(setup.profile, train_cfg), train_cfg)
    policy_kwargs: dict[str, Any] = {}  # the adjusted actor-critic's (agents.training.adjusted), checked before any file
    if tcfg.action_mask or tcfg.residual:
        from .adjusted import greedy_prior

        policy_kwargs = {"observation_spec": spec.to_dict() if tcfg.action_mask else None,
                         "prior": greedy_prior(teachers[0], tcfg.residual_temperature, spec) if tcfg.residual
                         else None}
    run = RunFolder(Path(out_dir), "sb3")
    out = run.root
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    run.record(out / "checkpoints", out / "tb")
    validation = Validation.create(setup, tcfg.val_fraction, tcfg.seed, tcfg.bandwidth_scales, tcfg.deadlines_ms,
                                   tcfg.val_episodes)
    fit_traces, val_traces = validation.fit_traces, validation.val_traces
    part_cfgs = condition_configs(train_cfg, tcfg.deadlines_ms)
    stored = run.read_state() if resume and run.has_checkpoint() else {}
    rounds: list[dict[str, Any]] = list(stored.get("curriculum", []))  # the curriculum's rounds so far

    def training_env(weights: Sequence[int] | None, seed: int) -> VecMonitor:
        traces = fit_traces if weights is None else validation.fit_weighted(weights)
        if len(part_cfgs) == 1:
            batched = SB3OffloadVecEnv(tcfg.n_envs, setup.profile, traces, train_cfg)
        else:  # one batched env per deadline, the n_envs devices shared out as evenly as they go
            sizes = [len(hand) for hand in deal(range(tcfg.n_envs), len(part_cfgs))]
            batched = SB3ConcatVecEnv([SB3OffloadVecEnv(n, setup.profile, traces, cfg)
                                       for n, cfg in zip(sizes, part_cfgs)])
        venv = VecMonitor(batched)
        venv.seed(seed)
        return venv

    venv = training_env(rounds[-1]["weights"] if rounds else None, _round_seed(tcfg.seed, len(rounds)))

    def policy(model: Any) -> LearnedPolicy:
        return LearnedPolicy(model, tcfg.algo, "sb3")

    if resume and run.has_checkpoint():
        model = load_model(run.checkpoint, tcfg.algo, env=venv)
        state = stored
        log(f"resuming from {run.checkpoint} at {model.num_timesteps} steps")
        # the best score is read with the best model: validation runs more often than checkpoints, so the model in
        # best_model.zip can be newer and better than the best score the last checkpoint recorded
        if run.best.exists():
            best = load_model(run.best, tcfg.algo)
            state["best_accuracy"] = validation.accuracy(policy(best))
            log(f"best model on disk ({best.num_timesteps} steps) scores {state['best_accuracy']:.4f} on validation")
    else:
        kwargs = tcfg.sb3_kwargs()
        net: Any = "MlpLstmPolicy" if tcfg.algo == "recurrent-ppo" else "MlpPolicy"
        if policy_kwargs:  # the same MLP, its logits adjusted per observation
            from .adjusted import AdjustedActorCriticPolicy

            net = AdjustedActorCriticPolicy
            kwargs["policy_kwargs"] = {**kwargs["policy_kwargs"], **policy_kwargs}
        model = _algo_class(tcfg.algo)(net, venv, device="cpu", verbose=0, tensorboard_log=str(out / "tb"), **kwargs)
        state = {"best_accuracy": -1.0, "history": [], "seconds": 0.0}
        if tcfg.warm_start != "none":
            from .warmstart import behaviour_clone

            n = len(tcfg.bandwidth_scales)
            sources = ([(validation.fit_weighted([int(j == k) for j in range(n)]), t) for k, t in enumerate(teachers)]
                       if tcfg.warm_start_per_scale else [(fit_traces, teachers[0])])
            state["warm_start"] = behaviour_clone(model, setup.profile, sources, part_cfgs, tcfg.seed, tcfg.gamma)
            state["seconds"] = state["warm_start"]["seconds"]
            log(f"warm start: cloned {tcfg.warm_start}{' re-tuned at each speed' * tcfg.warm_start_per_scale} on "
                f"{state['warm_start']['samples']:,} states (agreement {state['warm_start']['agreement']:.3f}) in "
                f"{state['warm_start']['seconds']} s")

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
            # (a validation at the same step count may have just run: it saw the model before the last update)
            self._validate()
            state["seconds"] += time.time() - self.t0
            self.t0 = time.time()

    if curriculum is not None:
        # the references' accuracy at each scale does not change during training: scored once
        reference_val = [[validation.accuracy_by_scale(p)[k] for p in refs] for k, refs in enumerate(curriculum)]
    n_phases = tcfg.curriculum_rounds + 1
    phase_ends = [tcfg.timesteps * (k + 1) // n_phases for k in range(n_phases)]
    t_start = time.time()
    if model.num_timesteps >= tcfg.timesteps:  # the history already ends at this model: nothing to validate again
        log(f"the run already has {model.num_timesteps:,} steps (--timesteps {tcfg.timesteps:,}): nothing to train")
    callback = _Callback()
    first = True  # this session's first call to learn: a new run counts its steps from 0
    for k, end in enumerate(phase_ends):
        if model.num_timesteps >= end:
            continue
        if k > len(rounds):  # the curriculum's next round: re-weight the scales, then train on
            rounds.append(_curriculum_round(validation, policy(model), reference_val, tcfg.bandwidth_scales,
                                            rounds[-1]["weights"] if rounds else [1] * len(tcfg.bandwidth_scales),
                                            int(model.num_timesteps)))
            state["curriculum"] = rounds
            log(f"curriculum round {len(rounds)} at {model.num_timesteps:,} steps: gap per scale "
                + ", ".join(f"x{s:g} {g:+.4f}" for s, g in zip(tcfg.bandwidth_scales, rounds[-1]["gap"]))
                + f"; x{rounds[-1]['picked']:g} drawn more often (weights {rounds[-1]['weights']})")
            model.set_env(training_env(rounds[-1]["weights"], _round_seed(tcfg.seed, len(rounds))))
        model.learn(total_timesteps=end - model.num_timesteps, callback=callback, progress_bar=progress,
                    reset_num_timesteps=first and not resume, tb_log_name=tcfg.algo)
        first = False
    run.save(out / "model.zip", model.save)
    run.save_checkpoint(model.save, {**state, "timesteps": int(model.num_timesteps)})
    run.finish(training_record(
        setup, tcfg, spec, train_cfg.to_dict(), len(fit_traces), len(val_traces), state,
        seconds=round(state["seconds"], 1), timesteps=int(model.num_timesteps),
        this_session_s=round(time.time() - t_start, 1),
        **({"warm_start": state["warm_start"]} if "warm_start" in state else {}),
        **({"curriculum": rounds} if tcfg.curriculum_rounds else {})))
    plot_learning_curve(state["history"], out / "learning_curve.png", tcfg.algo)
    run.record(out / "learning_curve.png")
    return TrainResult(out / "model.zip", run.best, state["seconds"], state["history"], int(model.num_timesteps))


def _round_seed(seed: int, round_: int) -> int:
    """The training env's seed in curriculum round ``round_`` (0: the run's own seed, as without a curriculum)."""
    return seed + 7919 * round_


def _curriculum_round(validation: Validation, policy: Policy, reference_val: list[list[float]],
                      scales: Sequence[float], weights: Sequence[int], timesteps: int) -> dict[str, Any]:
    """One curriculum round: the policy's validation accuracy at each scale, each scale's gap to its best
    re-tuned reference, and the weights with the largest gap's scale drawn once more often (the first on ties)."""
    mine = validation.accuracy_by_scale(policy)
    best = [max(accs) for accs in reference_val]
    gap = [b - m for b, m in zip(best, mine)]
    pick = int(np.argmax(gap))
    new = [int(w) + (k == pick) for k, w in enumerate(weights)]
    return {"timesteps": timesteps, "scales": [float(s) for s in scales], "policy_val": mine,
            "best_reference_val": best, "gap": gap, "picked": float(scales[pick]), "weights": new}


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
