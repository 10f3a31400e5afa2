"""The Gymnasium environment: a device choosing local / offload-at-r / teacher / reuse per frame over real traces.

``import envs`` registers ``offload/FrameOffload-v2`` (single env; its ``vector_entry_point`` is the batched
``OffloadVectorEnv``), so ``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` works.
"""

from __future__ import annotations

import gymnasium as gym

from offload_common.observation import SIGNALS, ObservationSpec, build_observation

from . import kernel  # noqa: F401  (public: envs.kernel, the compiled dynamics)
from .config import EnvConfig
from .core import OffloadDynamics, decision_seconds, observation_spec, select_profile, select_traces
from .offload_env import OffloadEnv, OffloadVectorEnv, default_inputs

ENV_ID = "offload/FrameOffload-v2"

__all__ = ["ENV_ID", "SIGNALS", "EnvConfig", "ObservationSpec", "OffloadDynamics", "OffloadEnv", "OffloadVectorEnv",
           "build_observation", "decision_seconds", "default_inputs", "observation_spec", "select_profile",
           "select_traces"]

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="envs.offload_env:OffloadEnv",
                 vector_entry_point="envs.offload_env:OffloadVectorEnv")
