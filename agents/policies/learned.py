"""A trained network (stable-baselines3 or RLlib) as a ``Policy``: greedy actions, one code path for both.

``greedy_module`` is the exact greedy path of the trained model as a PyTorch module, obs [B, D] -> (logits [B, A],
action [B]): for SB3 actor-critics the feature extractor, actor MLP and action head (and its logits' adjustment, for a policy
trained with an action mask or a prior: ``agents.training.adjusted``); for DQN the Q-network; for an
RLlib RLModule its inference forward pass. Evaluation acts with it and ONNX export traces it, so what is evaluated
is what is deployed. PyTorch is imported only when a learned policy is built.

A recurrent model (sb3-contrib's ``RecurrentPPO``) carries LSTM state from frame to frame: ``LearnedPolicy`` then
acts through the model's own ``predict`` with that state (started afresh by ``reset``, one per row), and it has no
feed-forward greedy path to export.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Policy


def greedy_module(model: Any):
    """``model``'s greedy path as a ``torch.nn.Module`` in eval mode returning (logits, argmax action)."""
    import torch

    if is_recurrent(model):
        raise ValueError(f"{type(model).__name__}: a recurrent policy carries LSTM state from frame to frame; ONNX "
                         "export and the device runtime take feed-forward policies (observation in, logits out)")

    class GreedyPath(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model if not hasattr(model, "policy") else model.policy  # an RLModule, or SB3's policy

        def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if not hasattr(model, "policy"):  # an RLlib RLModule: its action-distribution inputs are the logits
                logits = self.net.forward_inference({"obs": obs})["action_dist_inputs"]
            elif hasattr(self.net, "q_net"):  # DQN: Q-values play the role of logits
                logits = self.net.q_net(obs)
            else:
                features = self.net.extract_features(obs, self.net.pi_features_extractor)
                logits = self.net.action_net(self.net.mlp_extractor.forward_actor(features))
                if hasattr(self.net, "adjust_logits"):  # agents.training.adjusted: a mask or a prior in the net
                    logits = self.net.adjust_logits(obs, logits)
            return logits, torch.argmax(logits, dim=1)

    return GreedyPath().eval()


def is_recurrent(model: Any) -> bool:
    """Whether ``model`` is an SB3 model whose policy keeps LSTM state (sb3-contrib's recurrent policies)."""
    return hasattr(getattr(model, "policy", None), "lstm_actor")


class LearnedPolicy(Policy):
    """Greedy actions of a trained SB3 model or RLlib RLModule (``model``), through ``greedy_module``; a recurrent
    model's through its ``predict``, its LSTM state kept per row from ``reset`` on."""

    def __init__(self, model: Any, name: str, framework: str, observation_fields: list[str] | None = None):
        self.model, self.name, self.framework = model, name, framework
        self.observation_fields = observation_fields  # what it was trained on (its run's train.json), when known
        self.recurrent = is_recurrent(model)
        self._greedy = None if self.recurrent else greedy_module(model)
        self._state: Any = None  # recurrent: the LSTM state of each row since reset

    def attach(self, env: Any) -> None:
        """Refuse an env whose observation is not the one the policy was trained on (say, a run trained with
        the temporal fields evaluated without them), naming the fields that differ."""
        fields = getattr(env, "observation_fields", None)
        if self.observation_fields is not None and fields is not None and list(fields) != self.observation_fields:
            extra = [f for f in self.observation_fields if f not in fields]
            missing = [f for f in fields if f not in self.observation_fields]
            raise ValueError(f"{self.name}: trained on an observation of {len(self.observation_fields)} fields, the "
                             f"env has {len(fields)} (only the policy's: {extra}; only the env's: {missing}); "
                             "evaluate it with the env config it was trained with (its train.json env_config)")

    def reset(self) -> None:
        self._state = None

    def logits(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Action logits (Q-values for DQN) [B, A], as the exported ONNX graph computes them."""
        import torch

        if self._greedy is None:
            raise ValueError(f"{self.name}: a recurrent policy's logits depend on its LSTM state; use act")

        with torch.no_grad():
            return self._greedy(torch.as_tensor(obs, dtype=torch.float32))[0].numpy()

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        import torch

        if self._greedy is None:  # recurrent: the first call after reset starts every row's episode
            starts = np.full(len(obs), self._state is None)
            with torch.no_grad():
                action, self._state = self.model.predict(obs, state=self._state, episode_start=starts,
                                                         deterministic=True)
            return np.asarray(action, dtype=np.int64)

        with torch.no_grad():
            return self._greedy(torch.as_tensor(obs, dtype=torch.float32))[1].numpy().astype(np.int64)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "framework": self.framework, "model": type(self.model).__name__,
                **({"recurrent": True} if self.recurrent else {})}
