"""The experiment workflow below the CLI: every command's job as one typed function.

``Experiment`` + ``run_experiment`` (tune -> train -> export -> evaluate -> report, one seed or several) and
``train_runs`` (training only, SB3 or RLlib, or a Tune sweep); ``Evaluation`` + ``evaluate_policies`` and ``Sweep``
+ ``run_sweep_job`` compare policies that exist. ``Inputs`` names the data, ``load_inputs`` loads and splits it,
``JobRecord`` is what a report records about its job, ``group_runs`` / ``load_runs`` read training run folders.
This room sits on top of the others (policies, evaluation, training, deploy); the CLI only parses flags into these
configs.
"""

from .compare import SWEEP_POLICIES, Evaluation, Sweep, evaluate_policies, run_sweep_job
from .experiment import (
                         WARM_START_FROM,
                         Experiment,
                         ExperimentSummary,
                         TrainedRun,
                         check_experiment,
                         export_and_check,
                         run_experiment,
                         run_warm_start,
                         train_runs,
)
from .inputs import Inputs, Loaded, all_policy_names, load_inputs, print_tuning, resolve_policies
from .record import JobRecord
from .runs import group_runs, load_runs

__all__ = ["SWEEP_POLICIES", "WARM_START_FROM", "Evaluation", "Experiment", "ExperimentSummary", "Inputs", "JobRecord", "Loaded", "Sweep",
           "TrainedRun", "all_policy_names", "check_experiment", "evaluate_policies", "export_and_check",
           "group_runs", "load_inputs", "load_runs", "print_tuning", "resolve_policies", "run_experiment", "run_warm_start",
           "run_sweep_job", "train_runs"]
