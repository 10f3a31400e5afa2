"""Run folders, one contract for stable-baselines3 and RLlib: what a run writes where, how it is checkpointed and
resumed, and how it is read back as a policy.

``RunFolder`` says where each part lives. Both frameworks write ``config.json`` (settings, once), a checkpoint and
beside it a state record (training time, validation history, best score), the best model on validation (each
written atomically: a file through a temporary name, a folder built aside and swapped in whole), and ``train.json``
at the end (``training_record``). ``load_run_policy`` reads any finished run back as a ``Policy``.

Run folders also refuse to be overwritten by accident and resume only a run whose settings match.

A run folder holds ``config.json`` (what the run was started with; written once, never rewritten), the framework's
checkpoints, the best model and ``train.json``. ``prepare_run_dir`` decides, before any long work, what a ``train``
or ``run`` command may do with its ``--out`` folder:

* a folder that holds a run is never overwritten silently: the command refuses and names ``--resume`` (continue
  it) and ``--force`` (delete its files and start again);
* ``--resume`` on a folder that never held a run refuses instead of starting from scratch;
* ``--resume`` checks the stored framework, algorithm and every setting against this command's, naming each flag
  that differs, and records the resume in ``resumes.json`` (``config.json`` stays as the run was started).
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.policies import LearnedPolicy
from offload_common.files import (
    MANIFEST,
    atomic_folder,
    atomic_path,
    check_output_dir,
    delete_recorded,
    pid_alive,
    read_json,
    read_json_object,
    record_files,
    write_json,
)
from offload_common.observation import ObservationSpec

from .config import TrainConfig

CONFIG = "config.json"
RESUMES = "resumes.json"
PENDING_RESUME = ".resume-pending.json"  # this resume's entry, moved into resumes.json when its training finishes
LOCK = ".offload-gym.lock"  # the PID (and host) of the process writing the run
# what older code wrote into a run folder (runs without a manifest); --force deletes these exact names and nothing
# else; a run with a manifest (offload_common.files.MANIFEST) is cleared by what its manifest lists
RUN_FILES = (CONFIG, RESUMES, "train.json", "state.json", "model.zip", "best_model.zip", "learning_curve.png",
             "policy.onnx", "report.json", "report_meta.json", "report.md", "tune.json")
RUN_FOLDERS = ("checkpoints", "checkpoint", "best", "tb", "tune")
# files whose presence means the folder holds a run (rather than, say, an empty folder made by hand)
RUN_MARKERS = (CONFIG, "train.json", "state.json", "model.zip", "best_model.zip", "checkpoints", "checkpoint")
# settings that may change on resume: the training length, and how many workers sample (not what they learn)
RESUMABLE = {"timesteps", "eval_freq", "checkpoint_freq", "iterations", "num_env_runners"}
# the flag that sets each compared setting, to name in errors
FLAGS = {"framework": "--framework", "algo": "--algo", "n_envs": "--n-envs", "seed": "--seed",
         "profile": "--profile", "traces": "--traces"}


class RunFolderError(ValueError):
    """The ``--out`` folder cannot be used as asked; the message says why and which flag to use instead."""


def holds_run(out: Path) -> bool:
    """Whether ``out`` holds (part of) a training run written by this project."""
    return out.is_dir() and any((out / name).exists() for name in RUN_MARKERS)


def clear_run(out: Path) -> None:
    """Delete the files and folders the run recorded writing (``--force``, its manifest); anything else in the
    folder is left alone. A run written before manifests existed loses exactly the names runs write."""
    if (out / MANIFEST).is_file():
        delete_recorded(out)
        return
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)


def check_not_run_dir(out: Path, flag: str = "--out", what: str = "a report") -> Path:
    """``out`` as a writable folder that holds no training run: commands other than ``train`` / ``run`` never write
    into a run folder (they would replace the run's report or mix their files into it)."""
    out = check_output_dir(out, flag)
    if holds_run(out):
        raise RunFolderError(f"{flag} {out} holds a training run (it has {', '.join(n for n in RUN_MARKERS if (out / n).exists())}); "
                             f"{what} is never written into a run folder, so the run's own report and files stay as "
                             f"they are: choose another {flag} (e.g. {out / 'evaluate'})")
    return out


_HELD_LOCKS: set[Path] = set()


def _release_locks() -> None:
    for lock in list(_HELD_LOCKS):
        release_run_lock(lock.parent)


atexit.register(_release_locks)


def lock_run(out: Path) -> Path:
    """Take the run folder's lock file (``LOCK``: this PID and host) for this process, until it exits or
    ``release_run_lock``. A lock held by a live process refuses, naming its PID; the lock of a process that is
    gone (killed) is taken over. Taking it again in the holding process is a no-op."""
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
                pid, host = int(holder["pid"]), str(holder.get("host", ""))
            except FileNotFoundError:
                continue  # given back meanwhile: try again
            except (OSError, ValueError, KeyError, TypeError):
                holder, pid, host = None, None, ""
                try:
                    young = time.time() - lock.stat().st_mtime < 10
                except FileNotFoundError:
                    continue
                if young:  # another process may be writing its PID into the lock right now
                    raise RunFolderError(f"--out {out}: another process is taking the lock {lock}; wait for it to "
                                         "finish (or delete the lock if no process writes this run)") from None
            if pid == os.getpid() and host == me["host"]:
                _HELD_LOCKS.add(lock)
                return lock
            if pid is not None and (host != me["host"] or pid_alive(pid)):
                where = "" if host == me["host"] else f" on host {host}"
                raise RunFolderError(f"--out {out} is being written by another process (PID {pid}{where}, lock "
                                     f"{lock}): two writers would corrupt the run; wait for it to finish or stop it "
                                     "(if that process is gone, delete the lock file)") from None
            lock.unlink(missing_ok=True)  # its writer is gone (or the lock is unreadable): take it over
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        _HELD_LOCKS.add(lock)
        return lock
    raise RunFolderError(f"--out {out}: could not take the lock {lock} (it keeps being re-created)")


def release_run_lock(out: Path) -> None:
    """Give back this process's lock on ``out`` (nothing happens if another process holds it)."""
    lock = out / LOCK
    _HELD_LOCKS.discard(lock)
    try:
        holder = json.loads(lock.read_text())
    except (OSError, ValueError):
        return
    if isinstance(holder, dict) and holder.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


def _normalise(value: Any) -> Any:
    """JSON round trip, so tuples compare equal to the lists read back from disk."""
    return json.loads(json.dumps(value))


def setting_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between a stored and a requested config, skipping resumable settings."""
    diffs = []
    for key in sorted(set(stored) | set(wanted)):
        if key in RESUMABLE or key == "command":
            continue
        old, new = _normalise(stored.get(key)), _normalise(wanted.get(key))
        if isinstance(old, dict) and isinstance(new, dict):
            diffs += setting_differences(old, new, f"{prefix}{key}.")
            continue
        if old != new:
            flag = FLAGS.get(key)
            how = f"{flag} {new}" if flag else f"{prefix}{key} = {json.dumps(new)[:80]} (code or defaults changed)"
            diffs.append(f"{prefix}{key}: the run has {json.dumps(old)[:80]}, this command {how}")
    return diffs


def check_run_dir(out: Path, resume: bool, force: bool) -> None:
    """The checks on ``--out`` that need no settings (so they can run before any input is loaded).

    Raises RunFolderError when ``--resume`` and ``--force`` are both given, when ``--resume`` names a folder that
    holds no run, and when a folder that holds a run is named without either flag.
    """
    if resume and force:
        raise RunFolderError("--resume and --force contradict each other: --resume continues the run in --out, "
                             "--force deletes it")
    exists = holds_run(out)
    if resume and not exists:
        raise RunFolderError(f"--resume: {out} holds no run to resume (no {CONFIG}, checkpoint or model); "
                             "leave out --resume to start a new run there")
    if exists and not resume and not force:
        raise RunFolderError(f"--out {out} already holds a training run; pass --resume to continue it or --force "
                             "to delete it and start a new one (or choose another --out)")


def prepare_run_dir(out: Path, config: dict[str, Any], resume: bool, force: bool,
                    has_checkpoint: Callable[[Path], bool],
                    log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Make ``out`` ready for this command before any long work; returns the stored config when resuming.

    ``config`` is what ``config.json`` would hold for a new run (it must have ``framework``; its ``command`` is
    recorded but never compared). A new run gets its
    ``config.json`` written here; a resumed run keeps its own and gets an entry appended to ``resumes.json``.
    Raises RunFolderError (naming ``--resume`` / ``--force``) instead of overwriting or guessing.
    """
    check_run_dir(out, resume, force)
    lock_run(out)
    if resume:
        if not (out / CONFIG).exists():
            raise RunFolderError(f"--resume: {out} has no {CONFIG} (written by older code), so its settings cannot be "
                                 "checked; start a new run with --force or another --out")
        stored = read_json_object(out / CONFIG, "run config", {"train_config": dict},
                                  hint="restore it, or start a new run with --force or another --out")
        framework = stored.get("framework", "sb3")  # runs from before the field existed were all SB3
        if framework != config["framework"]:
            raise RunFolderError(f"--resume: {out} holds a {framework} run, but this command trains with --framework "
                                 f"{config['framework']}; pass --framework {framework} to continue it")
        diffs = setting_differences({**stored, "framework": framework}, config)
        if diffs:
            raise RunFolderError(f"--resume: this command's settings differ from those {out / CONFIG} was started "
                                 "with, so it would continue a different experiment:\n  " + "\n  ".join(diffs)
                                 + "\nresume with the run's settings, or start a new run with --force or another --out")
        if not has_checkpoint(out):
            log(f"{out} holds a run that stopped before its first checkpoint: training starts again from step 0 with "
                "the run's settings")
        else:
            RunFolder(out, framework).read_state()  # a corrupt state record fails here, before anything is logged
        if (out / RESUMES).exists():
            _read_resumes(out)
        # logged in resumes.json only once the resumed training finishes (RunFolder.finish): a failed resume is not
        write_json(out / PENDING_RESUME, {"command": config.get("command"),
                                          "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "from_checkpoint": has_checkpoint(out), **_flat_resumable(config)})
        record_files(out, [PENDING_RESUME])
        return stored
    if holds_run(out):  # with --force, as check_run_dir passed
        log(f"--force: deleting the run in {out}")
        clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / PENDING_RESUME).unlink(missing_ok=True)
    write_json(out / CONFIG, config)
    record_files(out, [CONFIG])
    return None


def _read_resumes(out: Path) -> list[Any]:
    resumes = read_json(out / RESUMES, "resume log")
    if not isinstance(resumes, list):
        raise ValueError(f"{out / RESUMES}: resume log holds a JSON {type(resumes).__name__}, expected a list of "
                         "resumes: the file is corrupt; restore it or delete it")
    return resumes


def _flat_resumable(config: Mapping[str, Any]) -> dict[str, Any]:
    """This command's training length and worker count (what a resume may change), for the resume log."""
    found: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("timesteps", "iterations", "num_env_runners"):
            found[key] = value
        elif isinstance(value, dict):
            found.update(_flat_resumable(value))
    return found



@dataclass(frozen=True)
class RunFolder:
    """Where a run of ``framework`` keeps what. SB3's checkpoint is ``checkpoints/last.zip`` and its best model
    ``best_model.zip``; RLlib's are the folders ``checkpoint/`` and ``best/`` (whole algorithm checkpoints)."""

    root: Path
    framework: str

    @property
    def checkpoint(self) -> Path:
        return self.root / ("checkpoints/last.zip" if self.framework == "sb3" else "checkpoint")

    @property
    def best(self) -> Path:
        return self.root / ("best_model.zip" if self.framework == "sb3" else "best")

    @property
    def state_path(self) -> Path:
        return self.root / ("checkpoints/state.json" if self.framework == "sb3" else "state.json")

    @property
    def record_path(self) -> Path:
        return self.root / "train.json"

    def has_checkpoint(self) -> bool:
        return self.checkpoint.exists()

    def read_state(self) -> dict[str, Any]:
        """The checkpoint's state record; one that is not an object with a ``history`` list and a numeric
        ``best_accuracy`` is an error naming the file (not a KeyError deep in training)."""
        return read_json_object(self.state_path, "checkpoint state", {"history": list, "best_accuracy": (int, float)},
                                hint="restore it, or start the run again with --force")

    def record(self, *paths: Path) -> None:
        """Record in the run's manifest that the project wrote ``paths`` (so ``--force`` deletes them, and only them)."""
        record_files(self.root, [Path(p).relative_to(self.root).parts[0] for p in paths])

    def _disk_full(self, path: Path, exc: OSError) -> RunFolderError:
        last = f" (the last complete checkpoint, {self.checkpoint}, is intact)" if self.has_checkpoint() else ""
        return RunFolderError(f"{path}: no space left on device ({exc.strerror or 'ENOSPC'}) while writing the run; "
                              f"nothing was half-written{last}. Free disk space, then continue this run with the "
                              f"same command plus --resume (--out {self.root})")

    def save(self, path: Path, write: Callable[[Path], None]) -> None:
        """Write a model to ``path`` atomically: ``write(tmp)`` fills a temporary file (``*.zip``) or folder beside
        it, which then replaces ``path`` whole. A full disk is an error that says the run can be resumed."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with (atomic_path(path) if path.suffix == ".zip" else atomic_folder(path)) as tmp:
                write(tmp)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._disk_full(path, exc) from exc
            raise
        self.record(path)

    def save_checkpoint(self, write: Callable[[Path], None], state: dict[str, Any]) -> None:
        """The checkpoint, then the state record that describes it."""
        self.save(self.checkpoint, write)
        try:
            write_json(self.state_path, state)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._disk_full(self.state_path, exc) from exc
            raise
        self.record(self.state_path)

    def finish(self, record: dict[str, Any]) -> None:
        """Write ``train.json`` and, for a resumed run, log this resume in ``resumes.json`` (only now that it
        finished)."""
        write_json(self.record_path, record)
        self.record(self.record_path)
        pending = self.root / PENDING_RESUME
        if pending.is_file():
            resumes = _read_resumes(self.root) if (self.root / RESUMES).exists() else []
            resumes.append(read_json(pending, "pending resume"))
            write_json(self.root / RESUMES, resumes)
            self.record(self.root / RESUMES)
            pending.unlink()


def training_record(setup: Any, cfg: TrainConfig, spec: ObservationSpec, env_config: dict[str, Any],
                    fit_traces: int, val_traces: int, state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """``train.json``: the settings, the env config trained in, the observation spec (``ObservationSpec.to_dict``:
    the contract a deployment rebuilds) with the observation and action layout derived from it, the frame
    profile's models, the validation history and best score, plus the framework's own ``extra`` fields."""
    return {"framework": cfg.framework, "train_config": cfg.to_dict(), "env_config": dict(env_config),
            "observation_spec": spec.to_dict(),
            "observation_fields": spec.field_names, "action_names": spec.action_names,
            "profile_models": setup.profile.meta.get("models", {}),
            "profile_weights_sha256": setup.profile.meta.get("weights_sha256", {}),
            "fit_traces": fit_traces, "val_traces": val_traces, "history": state["history"],
            "best_val_accuracy": state["best_accuracy"], **extra}


def load_run_model(run: str | Path) -> tuple[Any, Path, dict[str, Any]]:
    """A finished run's best model (SB3 model or RLlib RLModule), the path it came from, and its ``train.json``.

    SB3: ``best_model.zip``, else ``model.zip``; RLlib: ``best/``, else ``checkpoint/``.
    """
    run = Path(run)
    if not (run / "train.json").is_file():
        raise FileNotFoundError(f"{run}: not a finished training run folder (no train.json)")
    info = read_json_object(run / "train.json", "training record", {"train_config": dict},
                            hint="retrain the run, or restore the file")
    if info.get("framework") == "rllib":
        from .rllib import load_module

        module, path = load_module(run)
        return module, path, info
    from .sb3 import load_model

    path = run / "best_model.zip" if (run / "best_model.zip").exists() else run / "model.zip"
    return load_model(path, info["train_config"]["algo"]), path, info


def load_run_policy(run: str | Path, name: str | None = None) -> LearnedPolicy:
    """The learned policy of a finished run folder, SB3 or RLlib (named after the folder unless ``name``)."""
    model, _, info = load_run_model(run)
    return LearnedPolicy(model, name or Path(run).name, info.get("framework", "sb3"), info.get("observation_fields"))
