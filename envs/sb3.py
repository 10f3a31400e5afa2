"""stable-baselines3 ``VecEnv`` over the batched core, so SB3 trains on N devices without N Python envs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from bandwidth_traces import Trace
from perception import FrameProfile

from . import kernel
from .config import EnvConfig
from .core import OffloadDynamics
from .offload_env import _inputs, _spaces


class SB3OffloadVecEnv(VecEnv):
    """SB3's VecEnv protocol on ``OffloadDynamics``: same-step autoreset, ``terminal_observation`` in infos.

    Episodes end by truncation only, flagged with ``TimeLimit.truncated`` so SB3 bootstraps their value.
    ``seed(s)`` (or SB3's ``seed=`` arguments) makes sub-env i replay what ``OffloadEnv`` gives for seed s + i.
    """

    def __init__(self, num_envs: int = 8, profile: FrameProfile | None = None,
                 traces: Sequence[Trace] | None = None, config: EnvConfig = EnvConfig()):
        profile, traces = _inputs(profile, traces)
        self.config = config
        self.core = OffloadDynamics(num_envs, profile, traces, config)
        obs_space, act_space = _spaces(self.core)
        self.render_mode = None
        super().__init__(num_envs, obs_space, act_space)
        self.action_names = self.core.spec.action_names
        self.observation_fields = self.core.spec.field_names
        self._rows = np.arange(num_envs)
        self._actions: np.ndarray | None = None
        self._next_seeds: list[int | None] = [None] * num_envs  # from seed(), used by the next reset

    @property
    def observation_spec(self):
        """The observation's definition (``offload_common.observation.ObservationSpec``), as ``OffloadVectorEnv`` has it."""
        return self.core.spec

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """SB3's ``VecEnv.seed``: from the next ``reset`` on, sub-env i replays ``OffloadEnv`` for seed + i."""
        self._next_seeds = list(super().seed(seed))
        return self._next_seeds

    def reset(self) -> np.ndarray:
        """New episodes for every sub-env; after ``seed(s)`` from the seeded streams, else each stream continues.
        (Reset options are not used: episodes are drawn, never pinned, here.)"""
        seeds, self._next_seeds = self._next_seeds, [None] * self.num_envs
        seeded = [i for i, s in enumerate(seeds) if s is not None]
        self.core.seed_rows(seeded, [seeds[i] for i in seeded])
        self.core.reset_rows(self._rows)
        return self.core.observe().copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self.core.as_actions(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(actions)")
        out = self.core.step(self._actions, kernel.SAME_STEP)
        self._actions = None
        done = out.out["terminated"] | out.out["truncated"]
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            infos[i] = {"terminal_observation": out.final_obs[i].copy(),
                        "TimeLimit.truncated": bool(out.out["truncated"][i])}
        return out.obs.copy(), out.out["reward"].astype(np.float32), done, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        raise AttributeError(f"{type(self).__name__} has no per-env methods; {method_name!r} is not available")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
