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


class _InProcessVecEnv(VecEnv):
    """What SB3's VecEnv protocol asks of an env whose sub-envs live in this process as one batch: attributes are
    the batch's own, and there are no per-env methods or wrappers."""

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Only ``action_masks`` (per sub-env, as sb3-contrib's ``MaskablePPO`` asks for them; every batch here
        defines ``action_masks()`` for all its sub-envs at once)."""
        if method_name == "action_masks" and not method_args and not method_kwargs:
            masks = self.action_masks()  # type: ignore[attr-defined]
            return [masks[i] for i in self._get_indices(indices)]
        raise AttributeError(f"{type(self).__name__} has no per-env methods but action_masks; {method_name!r} is "
                             "not available")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


class SB3OffloadVecEnv(_InProcessVecEnv):
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

    def action_masks(self) -> np.ndarray:
        """[num_envs, A]: which actions can take effect for each sub-env now (``OffloadEnv.action_masks``)."""
        return self.core.action_masks()

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



class SB3ConcatVecEnv(_InProcessVecEnv):
    """Several ``SB3OffloadVecEnv`` side by side as one SB3 VecEnv: sub-envs keep their order, part after part.

    The parts may differ in their ``EnvConfig`` (one deadline each, say) but must share the observation and action
    spaces; each steps its own batched core, so the dynamics are the single env's. ``seed(s)`` seeds part k from
    s + (the sub-envs before it), so sub-env i replays what ``OffloadEnv`` gives with its part's config for seed s + i.
    """

    def __init__(self, parts: Sequence[SB3OffloadVecEnv]):
        if not parts:
            raise ValueError("SB3ConcatVecEnv needs at least one part")
        first = parts[0]
        for k, part in enumerate(parts[1:], 1):
            if part.observation_space != first.observation_space or part.action_space != first.action_space:
                raise ValueError(f"SB3ConcatVecEnv: part {k} has other observation or action spaces than part 0")
        self.parts = list(parts)
        self._bounds = np.cumsum([0] + [p.num_envs for p in parts])
        self.render_mode = None
        super().__init__(int(self._bounds[-1]), first.observation_space, first.action_space)
        self.action_names = first.action_names
        self.observation_fields = first.observation_fields

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        out: list[int | None] = []
        for start, part in zip(self._bounds, self.parts):
            out += part.seed(None if seed is None else seed + int(start))
        return out

    def reset(self) -> np.ndarray:
        return np.concatenate([part.reset() for part in self.parts])

    def action_masks(self) -> np.ndarray:
        return np.concatenate([part.action_masks() for part in self.parts])

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions)
        for k, part in enumerate(self.parts):
            part.step_async(actions[self._bounds[k]:self._bounds[k + 1]])

    def step_wait(self) -> VecEnvStepReturn:
        outs = [part.step_wait() for part in self.parts]
        return (np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs]),
                np.concatenate([o[2] for o in outs]), [info for o in outs for info in o[3]])

    def close(self) -> None:
        for part in self.parts:
            part.close()
