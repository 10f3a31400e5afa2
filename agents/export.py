"""Export a trained SB3 policy to ONNX: obs [batch, D] float32 -> action logits and the greedy action.

The exported graph is exactly the greedy path SB3 takes (feature extractor, actor MLP, action head, argmax; for
DQN the Q-network and argmax). Observations need no normalisation layer: ``envs.features`` already scales every
field, and the metadata says so. Metadata props carry the observation field list, the action meanings and the
frame profile's model names and weight hashes, so a device can check it feeds the right layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .files import check_output_file, read_json

OPSET = 17


def _rllib_actor(module: Any):
    import torch

    class GreedyRLModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module

        def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.module.forward_inference({"obs": obs})["action_dist_inputs"]
            return logits, torch.argmax(logits, dim=1)

    return GreedyRLModule().eval()


def _actor_module(model: Any):
    import torch

    if not hasattr(model, "policy"):  # an RLlib RLModule
        return _rllib_actor(model)
    policy = model.policy

    class GreedyActor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if hasattr(self.policy, "q_net"):  # DQN: Q-values play the role of logits
                logits = self.policy.q_net(obs)
            else:
                features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
                logits = self.policy.action_net(self.policy.mlp_extractor.forward_actor(features))
            return logits, torch.argmax(logits, dim=1)

    return GreedyActor().eval()


def torch_logits(model: Any, obs: np.ndarray) -> np.ndarray:
    """The same greedy path in PyTorch (for parity checks and benchmarks)."""
    import torch

    with torch.no_grad():
        return _actor_module(model)(torch.as_tensor(obs, dtype=torch.float32))[0].numpy()


def export_sb3(model: Any, path: str | os.PathLike, observation_fields: list[str], action_names: list[str],
               extra_meta: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s greedy policy as ONNX (atomically) and check it with ``onnx.checker``.

    ``path``'s missing folders are created; a path that is a folder, or a folder that cannot be written, is refused
    before the export starts.
    """
    import warnings

    import torch

    path = Path(path)
    dim = len(observation_fields)
    if getattr(model, "observation_space", None) is not None and model.observation_space.shape != (dim,):
        raise ValueError(f"model observes {model.observation_space.shape}, but {dim} observation fields were given")
    module = _actor_module(model)
    check_output_file(path, "ONNX output")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, torch.zeros(1, dim), str(tmp), input_names=["obs"],
                              output_names=["logits", "action"],
                              dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}, "action": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        _add_metadata_and_replace(model, tmp, path, observation_fields, action_names, extra_meta)
    finally:
        tmp.unlink(missing_ok=True)  # no stray temporary file, whatever failed
    return path


def _add_metadata_and_replace(model: Any, tmp: Path, path: Path, observation_fields: list[str],
                              action_names: list[str], extra_meta: dict[str, Any] | None) -> None:
    """Add the metadata props to the exported graph at ``tmp``, check it, and move it to ``path``."""
    import onnx

    dim = len(observation_fields)
    proto = onnx.load(str(tmp))
    meta = {"observation_fields": json.dumps(observation_fields), "action_names": json.dumps(action_names),
            "observation_dim": str(dim), "observation_normalization": "none: envs.features scales every field",
            "algorithm": type(model).__name__ if hasattr(model, "policy") else f"RLlib {type(model).__name__}",
            "producer": "offload-gym"}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra_meta or {}).items()})
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, flag: str = "-o") -> Path:
    """Export the best policy of a training run folder: SB3 (``best_model.zip``, else ``model.zip``) or RLlib.

    The output path is checked first (``flag`` names it in the error), before any model is loaded.
    """
    run = Path(run_dir)
    info_path = run / "train.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{run} is not a training run folder (no train.json)")
    out = check_output_file(run / "policy.onnx" if out is None else out, flag)
    info = read_json(info_path, "training record")
    for key in ("observation_fields", "action_names"):
        if key not in info:
            raise ValueError(f"{info_path} lacks {key!r} (written by older code): retrain or re-export from a new run")
    if info.get("framework") == "rllib":
        from .rllib import RLlibPolicy

        model, model_path = RLlibPolicy.from_run(run).module, run / "best"
    else:
        from .sb3_train import load_sb3_policy

        model_path = run / "best_model.zip" if (run / "best_model.zip").exists() else run / "model.zip"
        model = load_sb3_policy(model_path).model
    return export_sb3(model, out, info["observation_fields"], info["action_names"],
                      {"profile_models": info.get("profile_models", {}),
                       "profile_weights_sha256": info.get("profile_weights_sha256", {}),
                       "env_config": info.get("env_config", {}), "source_model": model_path.name})
