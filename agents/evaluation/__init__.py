"""Evaluation: fixed, paired episodes on held-out traces and clips, the tuning of every heuristic on training data
only, and the report (report.json / report.md / PNGs) with paired intervals against the best heuristic.

``Setup`` is one experiment's inputs and splits; ``Validation`` the held-out share of training traces both
training frameworks pick their best model on; ``named_policies`` builds (and tunes) policies by name.
"""

from .report import best_heuristic, paired_versus, write_report
from .rollout import (
                      EnvFactory,
                      Episodes,
                      EvalResult,
                      Rollout,
                      bootstrap_ci,
                      evaluate,
                      evaluate_many,
                      make_episodes,
                      rollout,
)
from .suite import Setup, Validation, evaluate_on_test, named_policies, trace_means, training_scorer, tuned_heuristics

__all__ = ["EnvFactory", "Episodes", "EvalResult", "Rollout", "Setup", "Validation", "best_heuristic",
           "bootstrap_ci", "evaluate", "evaluate_many", "evaluate_on_test", "make_episodes", "named_policies",
           "paired_versus", "rollout", "trace_means", "training_scorer", "tuned_heuristics", "write_report"]
