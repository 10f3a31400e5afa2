"""Device-side runtime for an exported policy: NumPy + ONNX Runtime only (no PyTorch, no Gymnasium).

``DeviceFeatures`` turns raw device signals into the observation with the very code the environment uses
(``offload_common.observation``, NumPy only: no simulator package is imported), and
``OnnxPolicy`` runs the exported network. ``OnnxPolicy`` is an ``agents.policies.Policy``, so ``agents.evaluation`` can
check on the simulator that the deployed artefact behaves exactly like the trained policy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.policies import Policy
from offload_common import observation


class OnnxPolicy(Policy):
    """Greedy actions from an exported ``policy.onnx``, validating every batch against the model's layout."""

    def __init__(self, path: str | os.PathLike, threads: int = 1, name: str = "onnx"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.observation_fields: list[str] = self._names(meta, "observation_fields")
        self.action_names: list[str] = self._names(meta, "action_names")
        self.metadata = dict(meta)
        self.dim = len(self.observation_fields)
        self.name = name
        self._check_graph()

    def _names(self, meta: dict[str, str], key: str) -> list[str]:
        """A metadata entry that must be a JSON list of distinct strings."""
        if key not in meta:
            raise ValueError(f"{self.path}: not an offload-gym policy (metadata {key!r} missing)")
        try:
            value = json.loads(meta[key])
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.path}: metadata {key!r} is not valid JSON ({exc.msg} at character {exc.pos}: "
                             f"{meta[key][:60]!r}); expected a JSON list of names: re-export the policy") from None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{self.path}: metadata {key!r} is {meta[key][:60]!r}, expected a non-empty JSON list of "
                             "names: re-export the policy")
        if len(set(value)) != len(value):
            raise ValueError(f"{self.path}: metadata {key!r} repeats a name ({meta[key][:60]!r}): re-export the policy")
        return value

    def _check_graph(self) -> None:
        """The graph's input and outputs must be the ones the metadata describes: obs [batch, len(observation_fields)]
        -> logits [batch, len(action_names)] and action [batch]."""
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if "obs" not in inputs or not {"logits", "action"} <= set(outputs):
            raise ValueError(f"{self.path}: graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}, expected "
                             "input 'obs' and outputs 'logits', 'action' (an offload-gym export)")

        def width(shape: list[Any]) -> int | None:
            return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None

        dim, n_actions = width(inputs["obs"]), width(outputs["logits"])
        if dim is not None and dim != self.dim:
            raise ValueError(f"{self.path}: metadata 'observation_fields' lists {self.dim} fields, but the graph's "
                             f"input 'obs' has {dim} columns: the metadata does not describe this network")
        declared = self.metadata.get("observation_dim")
        if declared is not None and declared != str(self.dim):
            raise ValueError(f"{self.path}: metadata 'observation_dim' is {declared!r}, but 'observation_fields' lists "
                             f"{self.dim} fields")
        if n_actions is not None and n_actions != len(self.action_names):
            raise ValueError(f"{self.path}: metadata 'action_names' lists {len(self.action_names)} actions "
                             f"({self.action_names}), but the graph's output 'logits' has {n_actions}: actions "
                             "outside the names would be returned; the metadata does not describe this network")

    def _check(self, obs: Any) -> NDArray[np.float32]:
        layout = f"float32 [batch, {self.dim}] with fields {self.observation_fields}"
        if not isinstance(obs, np.ndarray):
            raise TypeError(f"observation must be a NumPy array: expected {layout}")
        if obs.dtype != np.float32:
            raise TypeError(f"observation dtype is {obs.dtype}, expected {layout}")
        if obs.ndim != 2 or obs.shape[1] != self.dim:
            raise ValueError(f"observation shape is {obs.shape}, expected {layout}")
        if not np.isfinite(obs).all():
            bad = sorted({self.observation_fields[j] for j in np.argwhere(~np.isfinite(obs))[:, 1]})
            raise ValueError(f"observation has NaN or infinite values in fields {bad}")
        return obs

    def logits(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.session.run(["logits"], {"obs": self._check(obs)})[0]

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        return np.asarray(self.session.run(["action"], {"obs": self._check(obs)})[0], dtype=np.int64)

    def attach(self, env: Any) -> None:
        fields = list(getattr(env, "observation_fields", self.observation_fields))
        if fields != self.observation_fields:
            raise ValueError(f"{self.path} was exported for observation fields {self.observation_fields}, "
                             f"but the env produces {fields}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "onnx": str(self.path), "algorithm": self.metadata.get("algorithm")}


class DeviceFeatures:
    """Builds the policy's observation from raw device signals, with the environment's own feature code.

    The environment compiles ``offload_common/observation.py``'s ``observation_into`` with Numba; here the same source runs
    as plain Python (no Numba, no simulator). The timing constants (deadline, round trips, server compute,
    send-buffer size, prior) describe the deployment and must match what the policy was trained with;
    ``OnnxPolicy.metadata["env_config"]`` has them.
    """

    def __init__(self, top_k: int, history: int, resolutions: tuple[int, ...], deadline_s: float,
                 remote_rtt_s: tuple[float, ...], remote_compute_s: tuple[float, ...], max_queue: int,
                 prior_mbps: float):
        self.spec = observation.ObservationSpec(top_k, history, tuple(resolutions), deadline_s, tuple(remote_rtt_s),
                                      tuple(remote_compute_s), max_queue, prior_mbps)

    @property
    def field_names(self) -> list[str]:
        return self.spec.field_names

    def signals(self, batch: int = 1) -> NDArray:
        """A zeroed record array [batch] of the scalar signals (fields: ``offload_common/observation.py`` ``SIGNALS``)."""
        return np.zeros(batch, observation.SIGNALS)

    def __call__(self, topk_prob: NDArray, remote_kb: NDArray, dist: NDArray, meas_mbps: NDArray,
                 signals: NDArray) -> NDArray[np.float32]:
        """Observations [B, D]: top-k probabilities [B, k], JPEG kB per remote action [B, R + 1], the distilled
        head's P(right) for the student and each remote action [B, R + 2] (``perception.distill``), measured
        throughputs newest first [B, H], and the scalar ``signals`` [B] (see ``offload_common/observation.py``: the answer
        cache's fields come from the device's own cache and embeddings)."""
        return observation.build_observation(self.spec, topk_prob, remote_kb, dist, meas_mbps, signals)
