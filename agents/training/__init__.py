"""Training, one contract for stable-baselines3 and RLlib.

``TrainConfig`` holds every setting once and translates it for each framework; ``RunFolder`` fixes what a run
writes where (config, checkpoint and state, best model, ``train.json``) and the rules for reusing a folder
(``prepare_run_dir``: never overwrite silently, resume only matching settings); ``load_run_policy`` reads any
finished run back as a ``Policy``. Frameworks are imported only when used.
"""

from .config import ALGOS, FRAMEWORKS, MIXED_BANDWIDTH_SCALES, TrainConfig, default_bandwidth_scales, method_name
from .ray_cluster import ClusterConnectError, check_cluster, init_ray
from .ray_tasks import TaskFailed, WorkerInputs, map_on_ray
from .rllib import train_rllib, tune_sweep
from .runs import (
                   RunFolder,
                   RunFolderError,
                   check_not_run_dir,
                   check_run_dir,
                   holds_run,
                   load_run_model,
                   load_run_policy,
                   lock_run,
                   prepare_run_dir,
                   release_run_lock,
                   training_record,
)
from .sb3 import TrainResult, load_model, plot_learning_curve, train_sb3

__all__ = ["ALGOS", "FRAMEWORKS", "MIXED_BANDWIDTH_SCALES", "ClusterConnectError", "RunFolder", "RunFolderError",
           "TaskFailed", "TrainConfig", "TrainResult", "WorkerInputs", "check_cluster", "check_not_run_dir",
           "check_run_dir", "default_bandwidth_scales", "holds_run", "init_ray", "load_model", "load_run_model",
           "load_run_policy", "lock_run", "map_on_ray", "method_name", "plot_learning_curve", "prepare_run_dir",
           "release_run_lock", "train_rllib", "train_sb3", "training_record", "tune_sweep"]
