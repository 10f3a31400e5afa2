"""``TrainConfig``: one training config for stable-baselines3 and RLlib, translated into each framework's settings.

The shared numbers (learning rate, network, discount, GAE lambda, entropy bonus, epochs, minibatch, validation
share, reward baseline, seed) have one name and one default here; ``sb3_kwargs`` and ``rllib_training`` translate
them. Settings that only one framework has say so in their comment. The CLI reads its defaults from this class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

FRAMEWORKS = ("sb3", "rllib")
# recurrent-ppo: sb3-contrib's RecurrentPPO (an LSTM before the actor and the critic; PPO's settings otherwise),
# trained from scratch and evaluated in Python only (its state does not export to ONNX)
ALGOS = {"sb3": ("ppo", "a2c", "dqn", "recurrent-ppo"), "rllib": ("ppo",)}
# the CLI's training speeds for SB3 (``run`` and ``train``): one policy trained over a mixture of network speeds. In
# results/seeds.json (3 seeds) it scores +0.014 [+0.009, +0.018] over learned-greedy at x1 against +0.011 [+0.002,
# +0.019] for the same runs trained at x1 only (results/seeds-x1.json), and it no longer loses at x4 in the sweep
MIXED_BANDWIDTH_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def default_bandwidth_scales(framework: str) -> tuple[float, ...]:
    """The training speeds a CLI run gets when none are given: the mixture for SB3; RLlib trains at x1 only."""
    return MIXED_BANDWIDTH_SCALES if framework == "sb3" else (1.0,)


def method_name(framework: str, algo: str) -> str:
    """A learned method's name: the algorithm, prefixed with ``rllib-`` for RLlib (SB3's is the plain name)."""
    return f"rllib-{algo}" if framework == "rllib" else algo


@dataclass(frozen=True)
class TrainConfig:
    """What to train, how long, and with which hyperparameters. Defaults fit the main job on 2 CPU cores."""

    framework: str = "sb3"
    algo: str = "ppo"
    seed: int = 0
    # length: SB3 counts environment steps, RLlib training iterations of ``train_batch`` steps
    # 600,000 with the main job's warm start from learned-greedy (``run --warm-start``): in the ablation of
    # results/ablation-hp.json (3 seeds) it beat PPO from scratch at the same length on validation and held out
    timesteps: int = 600_000
    iterations: int = 60  # RLlib: 60 x 8,192 steps pass CBO on the default inputs
    # what the agent learns from
    val_fraction: float = 0.2  # share of training traces held out to pick the best model
    val_episodes: int = 1  # episodes per validation trace (and speed) the best model is picked on
    reward_baseline: str = "local"  # see EnvConfig.reward_baseline: same optimum, less noise
    episode_frames: int | None = None  # frames per training episode (None: EnvConfig's)
    # SB3: train and validate on the training traces at each of these throughput scales (domain randomisation over
    # the network's speed); (1.0,), a bare config's, trains on the traces as recorded; the CLI passes
    # ``default_bandwidth_scales(framework)`` (the mixture for SB3)
    bandwidth_scales: tuple[float, ...] = (1.0,)
    # SB3: train and validate at each of these deadlines (ms) as well (one policy for a range of deadlines: the
    # batched env is one env per deadline side by side, ``envs.sb3.SB3ConcatVecEnv``); (), a bare config's and the
    # CLI's default, trains at the env config's deadline only
    deadlines_ms: tuple[float, ...] = ()
    # SB3, over several ``bandwidth_scales``: a Genet-style curriculum (Xia et al., SIGCOMM 2022). Training is cut
    # into curriculum_rounds + 1 equal phases; after each but the last, the scale where the policy trails the
    # references re-tuned at that scale by the most on validation gets its files drawn once more often
    # (``train_sb3``'s ``curriculum``). 0: the uniform mixture
    curriculum_rounds: int = 0
    # network and optimiser (both frameworks; tanh MLP)
    net_arch: tuple[int, ...] = (256, 256)
    lstm_hidden: int = 64  # recurrent-ppo: the LSTM's state size (one LSTM each for actor and critic, before net_arch)
    learning_rate: float = 3e-4
    gamma: float = 0.9  # the uplink backlog couples decisions over ~10 frames at most
    gae_lambda: float = 0.9
    # ent_coef 0.005 collapsed to flooding the uplink by 50k steps (validation 0.647); 0.02 keeps exploring
    ent_coef: float = 0.02
    # 5 passes over each rollout, not SB3's 10: the update is ~3/4 of a PPO step's CPU time and the main job must fit
    # in 10 minutes on 2 cores with its set-up; on the default inputs (v2 env, seed 0, 1.5 M steps) 10 epochs trained
    # in 354 s to a best validation accuracy of 0.7881, 5 epochs in 194 s to 0.7873
    n_epochs: int = 5
    batch_size: int = 1024  # PPO minibatch
    clip_range: float = 0.2  # SB3 only: RLlib keeps its own PPO default (0.3), with which its results were measured
    # sampling
    n_envs: int = 32  # SB3: envs in the batched env
    n_steps: int = 128  # SB3 PPO: steps per env between updates (32 x 128 = 4,096)
    num_env_runners: int = 2  # RLlib: EnvRunner processes
    envs_per_runner: int = 8  # RLlib
    train_batch: int = 8192  # RLlib: environment steps per iteration
    # bookkeeping: SB3 validates / checkpoints every so many steps, RLlib every ``checkpoint_every`` iterations
    eval_freq: int = 100_000
    checkpoint_freq: int = 100_000
    checkpoint_every: int = 5
    threads: int = 2  # PyTorch threads of the SB3 learner
    # SB3: "none", or the name of the tuned reference (e.g. "cachenet", "learned-greedy") the network is
    # behaviour-cloned from before PPO starts (``agents.training.warmstart``; the caller passes the policy). "none"
    # here, since a bare config has no tuned reference; the main job (``run``) passes learned-greedy's
    warm_start: str = "none"
    # SB3 over several ``bandwidth_scales``: clone each speed's states from the ``warm_start`` reference re-tuned at
    # that speed (``train_sb3``'s ``scale_teachers``) instead of the one tuned at x1
    warm_start_per_scale: bool = False
    # SB3 actor-critics: give no probability to actions that cannot take effect (a send into a full buffer, reuse
    # without a cached answer; ``offload_common.observation.action_mask``), inside the network
    # (``agents.training.adjusted``), so the exported policy masks too
    action_mask: bool = False
    # SB3 actor-critics warm-started from learned-greedy: the actor's logits are that teacher's scores (P(right) plus
    # its bonuses) / residual_temperature plus the network's correction, which starts at zero (``adjusted``)
    residual: bool = False
    residual_temperature: float = 0.02

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"TrainConfig.framework={self.framework!r}: expected one of {FRAMEWORKS}")
        if self.algo not in ALGOS[self.framework]:
            raise ValueError(f"TrainConfig.algo={self.algo!r}: {self.framework} trains {ALGOS[self.framework]}")
        for name in ("timesteps", "iterations", "n_envs", "n_steps", "n_epochs", "batch_size", "envs_per_runner",
                     "train_batch", "eval_freq", "checkpoint_freq", "checkpoint_every", "threads", "val_episodes",
                     "lstm_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: expected an int >= 1")
        if self.num_env_runners < 0:
            raise ValueError(f"TrainConfig.num_env_runners={self.num_env_runners!r}: expected an int >= 0")
        scales = self.bandwidth_scales
        if not scales or not all(isinstance(s, (int, float)) and 0 < s < float("inf") for s in scales):
            raise ValueError(f"TrainConfig.bandwidth_scales={scales!r}: expected numbers > 0")
        if self.framework == "rllib" and tuple(scales) != (1.0,):
            raise ValueError("TrainConfig.bandwidth_scales: RLlib trains on the traces as recorded only ((1.0,)); "
                             "scaled training is implemented for SB3")
        deadlines = self.deadlines_ms
        if not all(isinstance(d, (int, float)) and not isinstance(d, bool) and 0 < d < float("inf")
                   for d in deadlines) or len(set(deadlines)) != len(deadlines):
            raise ValueError(f"TrainConfig.deadlines_ms={deadlines!r}: expected distinct numbers > 0 (ms), or () for "
                             "the env's deadline only")
        if deadlines and self.framework == "rllib":
            raise ValueError("TrainConfig.deadlines_ms: RLlib trains at the env's deadline only (()); training over "
                             "several deadlines is implemented for SB3")
        if len(deadlines) > self.n_envs:
            raise ValueError(f"TrainConfig.deadlines_ms: {len(deadlines)} deadlines need n_envs >= {len(deadlines)} "
                             f"(one batched env per deadline), got n_envs={self.n_envs}")
        rounds = self.curriculum_rounds
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
            raise ValueError(f"TrainConfig.curriculum_rounds={rounds!r}: expected an int >= 0")
        if rounds and (self.framework != "sb3" or len(set(scales)) < 2 or deadlines):
            raise ValueError(f"TrainConfig.curriculum_rounds={rounds}: the curriculum re-weights the bandwidth "
                             "scales of an SB3 run over several of them (bandwidth_scales), at one deadline "
                             f"(deadlines_ms=()); got framework={self.framework!r}, bandwidth_scales={tuple(scales)!r}, "
                             f"deadlines_ms={tuple(deadlines)!r}")
        if not isinstance(self.warm_start, str) or not self.warm_start:
            raise ValueError(f"TrainConfig.warm_start={self.warm_start!r}: expected 'none' or a policy name")
        if self.warm_start != "none" and (self.framework != "sb3" or self.algo not in ("ppo", "a2c")):
            raise ValueError(f"TrainConfig.warm_start={self.warm_start!r}: warm starts are implemented for SB3's "
                             f"feed-forward actor-critics (ppo, a2c) only, got algo={self.algo!r}")
        if not isinstance(self.warm_start_per_scale, bool):
            raise ValueError(f"TrainConfig.warm_start_per_scale={self.warm_start_per_scale!r}: expected a bool")
        if self.warm_start_per_scale and (self.warm_start == "none" or len(set(scales)) < 2):
            raise ValueError("TrainConfig.warm_start_per_scale: clones a warm start's teacher re-tuned at each of "
                             f"several bandwidth_scales; got warm_start={self.warm_start!r}, "
                             f"bandwidth_scales={tuple(scales)!r}")
        if not isinstance(self.action_mask, bool):
            raise ValueError(f"TrainConfig.action_mask={self.action_mask!r}: expected a bool")
        if self.action_mask and (self.framework != "sb3" or self.algo not in ("ppo", "a2c")):
            raise ValueError("TrainConfig.action_mask: masking is implemented for SB3's actor-critics (ppo, a2c) "
                             f"only; got framework={self.framework!r}, algo={self.algo!r}")
        if not isinstance(self.residual, bool):
            raise ValueError(f"TrainConfig.residual={self.residual!r}: expected a bool")
        if self.residual and (self.warm_start != "learned-greedy" or self.warm_start_per_scale):
            raise ValueError("TrainConfig.residual: the prior is the warm start's learned-greedy, one for all speeds; "
                             f"got warm_start={self.warm_start!r}, warm_start_per_scale={self.warm_start_per_scale}")
        if not (isinstance(self.residual_temperature, (int, float)) and 0 < self.residual_temperature < float("inf")):
            raise ValueError(f"TrainConfig.residual_temperature={self.residual_temperature!r}: expected a number > 0")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"TrainConfig.val_fraction={self.val_fraction!r}: expected a number in (0, 1)")

    @classmethod
    def sized(cls, timesteps: int = 600_000, **settings: Any) -> TrainConfig:
        """A config whose SB3 validation and checkpoint cadence follow its length: validation ten times per run and
        checkpoints five times, at most every 100,000 steps (the CLI's rule)."""
        return cls(timesteps=timesteps, eval_freq=max(1, min(100_000, timesteps // 10)),
                   checkpoint_freq=max(1, min(100_000, timesteps // 5)), **settings)

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> TrainConfig:
        """The config a run recorded (``config.json``'s ``train_config``); unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(stored) - names)
        if unknown:
            raise ValueError(f"train_config has unknown settings {unknown}; expected some of {sorted(names)}")
        return cls(**{k: tuple(v) if k in ("net_arch", "bandwidth_scales", "deadlines_ms")
                     else v for k, v in stored.items()})

    @property
    def method(self) -> str:
        """The name the trained method goes by in run folders and reports (``ppo``, ``a2c``, ``rllib-ppo``)."""
        return method_name(self.framework, self.algo)

    def env_overrides(self) -> dict[str, Any]:
        """``EnvConfig`` changes of the training env (both frameworks)."""
        extra = {} if self.episode_frames is None else {"episode_frames": self.episode_frames}
        return {"reward_baseline": self.reward_baseline, **extra}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    def sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the stable-baselines3 algorithm class (``PPO(..., **kwargs)``)."""
        kwargs: dict[str, Any] = {"gamma": self.gamma, "learning_rate": self.learning_rate, "seed": self.seed,
                                  "policy_kwargs": {"net_arch": list(self.net_arch)}}
        if self.algo == "recurrent-ppo":
            kwargs["policy_kwargs"]["lstm_hidden_size"] = self.lstm_hidden
        if self.algo in ("ppo", "recurrent-ppo"):
            kwargs.update({"n_steps": self.n_steps, "batch_size": self.batch_size, "n_epochs": self.n_epochs,
                           "gae_lambda": self.gae_lambda, "ent_coef": self.ent_coef, "clip_range": self.clip_range})
        elif self.algo == "a2c":
            kwargs.update({"n_steps": 16})
        else:
            kwargs.update({"buffer_size": 200_000, "learning_starts": 10_000, "batch_size": 256,
                           "train_freq": 4, "exploration_fraction": 0.2, "target_update_interval": 2_000})
        return kwargs

    def rllib_training(self) -> dict[str, Any]:
        """Arguments of RLlib's ``PPOConfig.training`` (the network, ``net_arch``, goes to its ``rl_module``)."""
        return {"lr": self.learning_rate, "gamma": self.gamma, "lambda_": self.gae_lambda,
                "entropy_coeff": self.ent_coef, "train_batch_size_per_learner": self.train_batch,
                "minibatch_size": self.batch_size, "num_epochs": self.n_epochs}
