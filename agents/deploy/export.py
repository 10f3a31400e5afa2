"""Export a trained policy (stable-baselines3 or RLlib) to ONNX: obs [batch, D] float32 -> logits and greedy action.

The exported graph is ``agents.policies.greedy_module``, the very path evaluation acts with (for SB3 the feature
extractor, actor MLP, action head and argmax; for DQN the Q-network and argmax; for RLlib the RLModule's inference
pass). Observations need no normalisation layer: ``offload_common.observation`` already scales every
field, and the metadata says so. Metadata props carry the observation field list, the action meanings and the
frame profile's model names and weight hashes, and the run's full ``ObservationSpec`` (``observation_spec``, JSON of
``ObservationSpec.to_dict``: every timing constant per action), so a device can rebuild and check the layout it feeds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from agents.policies import greedy_module
from offload_common.files import atomic_path, check_output_file, record_files

OPSET = 17


def torch_logits(model: Any, obs: np.ndarray) -> np.ndarray:
    """The exported greedy path's logits in PyTorch (for parity checks and benchmarks)."""
    import torch

    with torch.no_grad():
        return greedy_module(model)(torch.as_tensor(obs, dtype=torch.float32))[0].numpy()


def export_model(model: Any, path: str | os.PathLike, observation_fields: list[str], action_names: list[str],
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
    module = greedy_module(model)
    check_output_file(path, "ONNX output")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # no stray temporary file, whatever fails
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, torch.zeros(1, dim), str(tmp), input_names=["obs"],
                              output_names=["logits", "action"],
                              dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}, "action": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        _add_metadata(model, tmp, observation_fields, action_names, extra_meta)
    return path


def _add_metadata(model: Any, tmp: Path, observation_fields: list[str], action_names: list[str],
                  extra_meta: dict[str, Any] | None) -> None:
    """Add the metadata props to the exported graph at ``tmp`` and check it."""
    import onnx

    dim = len(observation_fields)
    proto = onnx.load(str(tmp))
    meta = {"observation_fields": json.dumps(observation_fields), "action_names": json.dumps(action_names),
            "observation_dim": str(dim),
            "observation_normalization": "none: offload_common.observation scales every field",
            "algorithm": type(model).__name__ if hasattr(model, "policy") else f"RLlib {type(model).__name__}",
            "producer": "offload-gym"}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra_meta or {}).items()})
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, flag: str = "-o") -> Path:
    """Export the best policy of a training run folder: SB3 (``best_model.zip``, else ``model.zip``) or RLlib.

    The output path is checked first (``flag`` names it in the error), before any model is loaded.
    """
    from agents.training import load_run_model

    run = Path(run_dir)
    if not (run / "train.json").exists():
        raise FileNotFoundError(f"{run} is not a training run folder (no train.json)")
    out = check_output_file(run / "policy.onnx" if out is None else out, flag)
    model, model_path, info = load_run_model(run)
    for key in ("observation_fields", "action_names"):
        if key not in info:
            raise ValueError(f"{run / 'train.json'} lacks {key!r} (written by older code): retrain or re-export "
                             "from a new run")
    extra = {"observation_spec": info["observation_spec"]} if "observation_spec" in info else {}
    path = export_model(model, out, info["observation_fields"], info["action_names"],
                        {**extra, "profile_models": info.get("profile_models", {}),
                         "profile_weights_sha256": info.get("profile_weights_sha256", {}),
                         "env_config": info.get("env_config", {}), "source_model": model_path.name})
    if path.absolute().parent == run.absolute():  # written into the run folder: part of the run (--force deletes it)
        record_files(run, [path.name])
    return path
