"""Decision makers and their evaluation.

``Policy`` is the one interface (batched obs -> actions) implemented by CBO, the baselines, learned SB3/RLlib
agents and the ONNX device runtime; ``evaluate`` runs any of them on fixed, paired episodes and
``write_report`` turns results into report.json / report.md / PNGs.
"""

from __future__ import annotations

from .baselines import ConstantPolicy, HindsightOracle, RandomPolicy, baseline_policies
from .cbo import CBOPolicy, profiled_accuracy, tune_cbo
from .evaluate import Episodes, EvalResult, Rollout, bootstrap_ci, evaluate, evaluate_many, make_episodes
from .policy import FieldIndex, Policy
from .report import write_report

__all__ = ["CBOPolicy", "ConstantPolicy", "Episodes", "EvalResult", "FieldIndex", "HindsightOracle", "Policy",
           "RandomPolicy", "Rollout", "baseline_policies", "bootstrap_ci", "evaluate", "evaluate_many",
           "make_episodes", "profiled_accuracy", "tune_cbo", "write_report"]
