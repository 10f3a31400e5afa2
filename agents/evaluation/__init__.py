"""Evaluation: fixed, paired episodes on held-out traces and scenes, the tuning of every heuristic on training data
only, and the report (report.json / report.md / PNGs) with paired intervals against the best heuristic.

Also the research workflow: test traces from another data set (``holdout``), several training seeds with
across-seed intervals (``seeds``), and accuracy against bandwidth scale and deadline (``sweep``).

``Setup`` is one experiment's inputs and splits; ``Validation`` the held-out share of training traces both
training frameworks pick their best model on; ``named_policies`` builds (and tunes) policies by name.
"""

from .holdout import (
                      cross_setup,
                      describe_test_side,
                      load_test_traces,
                      mark_family_warnings,
                      runs_trained_on,
                      single_trace_families,
)
from .report import best_heuristic, is_report_file, paired_versus, warnings_markdown, write_report
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
from .scoring import TrainingScorer, default_workers
from .seeds import (
                      MAX_SEEDS,
                      SEED_INTERVAL_NOTE,
                      SeedGroup,
                      across_seeds,
                      check_seed_count,
                      seed_stats,
                      seeds_markdown,
                      t_quantile_975,
)
from .suite import (
    Setup,
    Validation,
    condition_configs,
    deal,
    evaluate_on_test,
    named_policies,
    scale_references,
    trace_means,
    training_scorer,
    tuned_heuristics,
)
from .sweep import (
                      MAX_EVALUATIONS,
                      SWEEP_FILES,
                      SWEEP_PARTIAL,
                      check_sweep_size,
                      describe_training,
                      run_sweep,
                      sweep_point,
                      sweep_points,
                      write_sweep,
)

__all__ = ["MAX_EVALUATIONS", "MAX_SEEDS", "SEED_INTERVAL_NOTE", "SWEEP_FILES", "SWEEP_PARTIAL",
           "EnvFactory", "Episodes", "EvalResult", "Rollout", "SeedGroup", "Setup", "TrainingScorer",
           "Validation", "across_seeds", "best_heuristic", "bootstrap_ci", "check_seed_count",
           "check_sweep_size", "condition_configs", "cross_setup", "deal", "default_workers", "describe_training", "describe_test_side",
           "evaluate", "evaluate_many", "evaluate_on_test", "is_report_file", "load_test_traces",
           "make_episodes", "mark_family_warnings", "named_policies", "paired_versus",
           "rollout", "run_sweep", "scale_references", "runs_trained_on", "seed_stats", "seeds_markdown",
           "single_trace_families", "sweep_point", "sweep_points", "t_quantile_975", "trace_means", "training_scorer",
           "tuned_heuristics", "warnings_markdown", "write_report", "write_sweep"]
