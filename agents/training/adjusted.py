"""An SB3 actor-critic whose action logits are adjusted per observation: a fixed prior added, masked actions removed.

``AdjustedActorCriticPolicy`` is SB3's ``MlpPolicy`` (one feature extractor, a tanh MLP for actor and critic) with
its categorical distribution built from ``adjust_logits(obs, action head's logits)``. Two adjustments, each opt-in:

* **mask** (``TrainConfig.action_mask``): the logits of the actions ``offload_common.observation.action_mask``
  rules out for this observation (a send while the buffer is full, reuse with no cached answer) are set to
  ``MASKED_LOGIT``, so they are never sampled, carry no gradient and never win the argmax. This is what
  sb3-contrib's ``MaskablePPO`` does with masks passed beside the observation (the envs offer those too,
  ``action_masks()``); here the mask is read off the observation itself, so it travels in the network.
* **prior** (``TrainConfig.residual``): the warm start's learned-greedy scores, P(answer used is right) plus its
  tuned send and reuse bonuses, divided by ``residual_temperature``, are added to the action head's output, whose
  last layer starts at zero. Training starts from exactly learned-greedy's decisions (PPO's stochastic policy is a
  softmax around them) and learns a correction, where a behaviour clone only approximates the teacher.

The adjustment is part of the network's forward pass, so rollouts, PPO's updates, evaluation
(``agents.policies.greedy_module`` calls ``adjust_logits``) and the exported ONNX graph all apply it, and a device
needs nothing beyond the observation it already builds. Both are saved with the model (its constructor keywords).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy

from offload_common.observation import ObservationSpec, action_mask

MASKED_LOGIT = -1e8  # as sb3-contrib's masking: the softmax gives it probability 0 in float32


def greedy_prior(teacher: Any, temperature: float, spec: ObservationSpec) -> dict[str, Any]:
    """The ``prior`` keyword of ``AdjustedActorCriticPolicy`` from a tuned ``LearnedGreedyPolicy`` fitted on the
    observation ``spec`` describes: its model's layers, its per-action bonus and the temperature, as plain lists."""
    model = getattr(teacher, "model", None)
    if model is None or not hasattr(model, "weights"):
        raise ValueError(f"TrainConfig.residual: the prior must be a tuned learned-greedy policy, got "
                         f"{type(teacher).__name__} {getattr(teacher, 'name', '?')!r}")
    if list(model.fields) != spec.field_names or list(model.actions) != spec.action_names:
        raise ValueError("TrainConfig.residual: learned-greedy was fitted on another observation or action list "
                         f"({len(model.fields)} fields, {model.actions}) than the training env's "
                         f"({spec.dim} fields, {spec.action_names})")
    bonus = [teacher.send_bonus if a.startswith("offload@") or a == "teacher" else
             teacher.reuse_bonus if a == "reuse" else 0.0 for a in model.actions]
    return {"mean": model.mean.tolist(), "scale": model.scale.tolist(), "weights": [w.tolist() for w in model.weights],
            "biases": [b.tolist() for b in model.biases], "bonus": bonus, "temperature": float(temperature),
            "actions": list(model.actions), "fields": list(model.fields), "model": model.fingerprint()}


class AdjustedActorCriticPolicy(ActorCriticPolicy):
    """SB3's ``MlpPolicy`` (shared feature extractor) with its logits adjusted per observation (module docstring).

    ``observation_spec``: the env's ``ObservationSpec.to_dict()``, to mask (None: no mask). ``prior``:
    ``greedy_prior(...)``, to add learned-greedy's scores (None: none).
    """

    def __init__(self, *args: Any, observation_spec: dict[str, Any] | None = None,
                 prior: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.observation_spec, self.prior = observation_spec, prior
        self.spec = None if observation_spec is None else ObservationSpec.from_dict(
            observation_spec, "AdjustedActorCriticPolicy(observation_spec=...)")
        super().__init__(*args, **kwargs)
        if not self.share_features_extractor:
            raise ValueError("AdjustedActorCriticPolicy needs share_features_extractor=True (SB3's default for PPO)")
        n_obs, n_act = self.observation_space.shape[0], self.action_space.n
        if self.spec is not None and (self.spec.dim, self.spec.n_actions) != (n_obs, n_act):
            raise ValueError(f"AdjustedActorCriticPolicy: the observation spec has {self.spec.dim} fields and "
                             f"{self.spec.n_actions} actions, the spaces {n_obs} and {n_act}")
        if prior is not None:
            if len(prior["mean"]) != n_obs or len(prior["bonus"]) != n_act or not prior["temperature"] > 0:
                raise ValueError(f"AdjustedActorCriticPolicy: the prior reads {len(prior['mean'])} fields and scores "
                                 f"{len(prior['bonus'])} actions at temperature {prior['temperature']!r}; the spaces "
                                 f"have {n_obs} and {n_act} (and the temperature must be > 0)")
            as_t = lambda v: torch.as_tensor(np.asarray(v, np.float32))  # noqa: E731
            self.register_buffer("prior_mean", as_t(prior["mean"]))
            self.register_buffer("prior_scale", as_t(prior["scale"]))
            self.register_buffer("prior_bonus", as_t(prior["bonus"]))
            self.prior_layers = len(prior["weights"])
            for k, (w, b) in enumerate(zip(prior["weights"], prior["biases"])):
                self.register_buffer(f"prior_w{k}", as_t(w))
                self.register_buffer(f"prior_b{k}", as_t(b))
            with torch.no_grad():  # the network's correction starts at zero: the policy starts as the prior
                self.action_net.weight.zero_()
                self.action_net.bias.zero_()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "observation_spec": self.observation_spec,
                "prior": self.prior}

    def prior_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """learned-greedy's scores for ``obs`` [B, D] over the temperature [B, A] (``GreedyModel.predict`` + bonus)."""
        h = (obs - self.prior_mean) / self.prior_scale
        for k in range(self.prior_layers):
            h = h @ getattr(self, f"prior_w{k}") + getattr(self, f"prior_b{k}")
            if k < self.prior_layers - 1:
                h = torch.tanh(h)
        return (torch.sigmoid(torch.clamp(h, -30.0, 30.0)) + self.prior_bonus) / self.prior["temperature"]

    def adjust_logits(self, obs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The action head's ``logits`` [B, A] for ``obs`` [B, D], the prior added and masked actions removed."""
        if self.prior is not None:
            logits = logits + self.prior_logits(obs)
        if self.spec is not None:
            logits = torch.where(action_mask(self.spec, obs), logits, torch.full_like(logits, MASKED_LOGIT))
        return logits

    def _distribution(self, obs: torch.Tensor, latent_pi: torch.Tensor) -> Distribution:
        return self.action_dist.proba_distribution(action_logits=self.adjust_logits(obs, self.action_net(latent_pi)))

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor,
                                                                               torch.Tensor]:
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        distribution = self._distribution(obs, latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions.reshape((-1, *self.action_space.shape)), self.value_net(latent_vf), distribution.log_prob(actions)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        distribution = self._distribution(obs, latent_pi)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: torch.Tensor) -> Distribution:
        return self._distribution(obs, self.mlp_extractor.forward_actor(self.extract_features(obs)))
