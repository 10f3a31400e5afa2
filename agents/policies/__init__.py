"""Decision makers: every one implements ``Policy`` (batched observations -> actions).

Fixed baselines and the hindsight oracle (``baselines``), the reference heuristic CBO (``cbo``), the heuristics on
distilled confidence and the answer cache (``cachenet``: cbo-cond and cachenet), the one-step learned baseline
learned-greedy (``greedy``: a NumPy MLP's per-action P(answer right), greedy with a tuned send bonus), the
information-limited reference link-oracle (``clairvoyant``: knows the true future link, not which answers are
right), and trained networks (``learned``). Each heuristic's tuning function is here too; which data it is tuned on is the evaluation's
business (``agents.evaluation``). Imports NumPy only (PyTorch when a learned policy is built).
"""

from .base import FieldIndex, Policy
from .baselines import ConstantPolicy, HindsightOracle, RandomPolicy, baseline_policies
from .cachenet import CacheNetPolicy, CBOCondPolicy, remote_actions, tune_cachenet, tune_cbo_cond
from .cbo import CBOPolicy, profiled_accuracy, tune_cbo
from .clairvoyant import LINK_PREVIEW_FIELDS, ClairvoyantLinkPolicy, tune_clairvoyant
from .greedy import GreedyModel, LearnedGreedyPolicy, tune_learned_greedy
from .learned import LearnedPolicy, greedy_module

# The tuned references a learned policy must beat (the "best heuristic" of every report is the best of these):
# the rules, and learned-greedy, the one-step learned baseline (is RL needed, or does supervised learning suffice?)
HEURISTICS = ("cbo", "cbo+teacher", "cbo-cond", "cachenet", "learned-greedy")
TUNED_REFERENCES = ("link-oracle",)  # tuned like the heuristics, but read the true link: never "best heuristic"
REFERENCES = ("oracle", *TUNED_REFERENCES)  # upper references, not deployable: never bold, never a reference to beat

__all__ = ["HEURISTICS", "LINK_PREVIEW_FIELDS", "REFERENCES", "TUNED_REFERENCES", "CBOCondPolicy", "CBOPolicy",
           "CacheNetPolicy", "ClairvoyantLinkPolicy", "ConstantPolicy", "FieldIndex", "GreedyModel",
           "HindsightOracle", "LearnedGreedyPolicy", "LearnedPolicy", "Policy", "RandomPolicy", "baseline_policies",
           "greedy_module", "profiled_accuracy", "remote_actions", "tune_cachenet", "tune_cbo", "tune_cbo_cond",
           "tune_clairvoyant", "tune_learned_greedy"]
