"""Decision makers: every one implements ``Policy`` (batched observations -> actions).

Fixed baselines and the hindsight oracle (``baselines``), the reference heuristic CBO (``cbo``), the heuristics on
distilled confidence and the answer cache (``cachenet``: cbo-cond and cachenet), and trained networks
(``learned``). Each heuristic's tuning function is here too; which data it is tuned on is the evaluation's
business (``agents.evaluation``). Imports NumPy only (PyTorch when a learned policy is built).
"""

from .base import FieldIndex, Policy
from .baselines import ConstantPolicy, HindsightOracle, RandomPolicy, baseline_policies
from .cachenet import CacheNetPolicy, CBOCondPolicy, remote_actions, tune_cachenet, tune_cbo_cond
from .cbo import CBOPolicy, profiled_accuracy, tune_cbo
from .learned import LearnedPolicy, greedy_module

HEURISTICS = ("cbo", "cbo+teacher", "cbo-cond", "cachenet")  # the tuned rules a learned policy must beat

__all__ = ["HEURISTICS", "CBOCondPolicy", "CBOPolicy", "CacheNetPolicy", "ConstantPolicy", "FieldIndex",
           "HindsightOracle", "LearnedPolicy", "Policy", "RandomPolicy", "baseline_policies", "greedy_module",
           "profiled_accuracy", "remote_actions", "tune_cachenet", "tune_cbo", "tune_cbo_cond"]
