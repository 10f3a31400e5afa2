"""Decision makers and their evaluation.

``Policy`` is the one interface (batched obs -> actions) implemented by CBO, the baselines, learned SB3/RLlib
agents and the ONNX device runtime; ``evaluate`` runs any of them on fixed, paired episodes and
``write_report`` turns results into report.json / report.md / PNGs. Names are imported lazily, so the device
runtime (``agents.deploy``) loads with NumPy and ONNX Runtime alone.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# bound eagerly: the function shares its name with the submodule, which would otherwise shadow it once imported
from .evaluate import evaluate  # noqa: E402  (NumPy-only module)

_EXPORTS = {
    "Policy": "policy", "FieldIndex": "policy",
    "ConstantPolicy": "baselines", "HindsightOracle": "baselines", "RandomPolicy": "baselines",
    "baseline_policies": "baselines",
    "CBOPolicy": "cbo", "profiled_accuracy": "cbo", "tune_cbo": "cbo",
    "Episodes": "evaluate", "EvalResult": "evaluate", "Rollout": "evaluate", "bootstrap_ci": "evaluate",
    "evaluate_many": "evaluate", "make_episodes": "evaluate",
    "write_report": "report",
    "OnnxPolicy": "deploy", "DeviceFeatures": "deploy",
}
__all__ = sorted([*_EXPORTS, "evaluate"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
