"""Action masking inside an SB3 actor-critic: actions that cannot take effect get no probability.

``TrainConfig.action_mask`` trains PPO (or A2C) with ``MaskedActorCriticPolicy`` in place of ``"MlpPolicy"``. Its
distribution is SB3's categorical over the action head's logits, with the logits of the actions that
``offload_common.observation.action_mask`` rules out (a send while the buffer is full, reuse with no cached
answer) set to ``MASKED_LOGIT``. The mask is read off the observation itself, so the rule travels in the network:
rollouts, PPO's updates, evaluation (``agents.policies.greedy_module`` calls ``mask_logits``) and the exported ONNX
graph all apply it, and a device needs nothing beyond the observation it already builds. This is what sb3-contrib's
``MaskablePPO`` does with masks passed beside the observation; the envs offer those too (``action_masks()``) for
users of that library.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy

from offload_common.observation import ObservationSpec, action_mask

MASKED_LOGIT = -1e8  # as sb3-contrib's masking: the softmax gives it probability 0 in float32


class MaskedActorCriticPolicy(ActorCriticPolicy):
    """SB3's ``MlpPolicy`` (shared feature extractor) whose action distribution excludes, per observation, the
    actions ``action_mask`` rules out. ``observation_spec``: the env's ``ObservationSpec.to_dict()`` (it names
    where ``pending`` and ``cache_held`` sit; saved with the model)."""

    def __init__(self, *args: Any, observation_spec: dict[str, Any], **kwargs: Any) -> None:
        self.observation_spec = dict(observation_spec)
        self.spec = ObservationSpec.from_dict(self.observation_spec, "MaskedActorCriticPolicy(observation_spec=...)")
        super().__init__(*args, **kwargs)
        if not self.share_features_extractor:
            raise ValueError("MaskedActorCriticPolicy needs share_features_extractor=True (SB3's default for PPO)")
        if self.observation_space.shape != (self.spec.dim,) or self.action_space.n != self.spec.n_actions:
            raise ValueError(f"MaskedActorCriticPolicy: the observation spec has {self.spec.dim} fields and "
                             f"{self.spec.n_actions} actions, the spaces {self.observation_space.shape} and "
                             f"{self.action_space.n}")

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "observation_spec": self.observation_spec}

    def mask_logits(self, obs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` [B, A] with the actions ``action_mask`` rules out for ``obs`` [B, D] set to MASKED_LOGIT."""
        return torch.where(action_mask(self.spec, obs), logits, torch.full_like(logits, MASKED_LOGIT))

    def _masked(self, obs: torch.Tensor, latent_pi: torch.Tensor) -> Distribution:
        return self.action_dist.proba_distribution(action_logits=self.mask_logits(obs, self.action_net(latent_pi)))

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor,
                                                                               torch.Tensor]:
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        distribution = self._masked(obs, latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions.reshape((-1, *self.action_space.shape)), self.value_net(latent_vf), distribution.log_prob(actions)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        distribution = self._masked(obs, latent_pi)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: torch.Tensor) -> Distribution:
        return self._masked(obs, self.mlp_extractor.forward_actor(self.extract_features(obs)))
