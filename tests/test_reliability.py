"""Issue #16: runs are never lost, bad input fails at once with its cause, reports and outputs are whole.

One real (tiny) SB3 run is trained once through the CLI and copied for the tests that change it. CLI calls run
in-process through ``train_agent.main`` (exit status and stderr as a user sees them, without a new interpreter).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers import SMALL, hand_results
from helpers import run_cli as _cli
from helpers import snapshot as _snapshot

from bandwidth_traces import TraceFormatError, load_traces


def _strict(path: Path):
    """Parse JSON as strict readers do: bare NaN / Infinity are errors."""
    def reject(constant: str):
        raise AssertionError(f"{path} holds bare {constant}, which strict JSON readers reject")

    return json.loads(path.read_text(), parse_constant=reject)


# -- 1. a folder that holds a run is never overwritten silently

def test_train_into_a_run_refuses_and_names_resume_and_force(trained: Path, capsys) -> None:
    before = _snapshot(trained)
    rc, err = _cli(capsys, "train", *SMALL, "--out", str(trained))
    assert rc == 2 and "already holds a training run" in err and "--resume" in err and "--force" in err
    rc, err = _cli(capsys, "run", *SMALL, "--episodes", "1", "--out", str(trained))
    assert rc == 2 and "--force" in err
    assert _snapshot(trained) == before


def test_force_replaces_the_run(run_copy: Path, capsys) -> None:
    (run_copy / "notes.txt").write_text("mine")
    rc, err = _cli(capsys, "train", *SMALL, "--seed", "1", "--out", str(run_copy), "--force")
    assert rc == 0, err
    # a new run with its own config (another seed), not a continuation of the old one
    config = json.loads((run_copy / "config.json").read_text())
    assert config["seed"] == 1 and "--force" in config["command"]
    assert json.loads((run_copy / "train.json").read_text())["train_config"]["seed"] == 1
    assert (run_copy / "notes.txt").read_text() == "mine"  # only the run's own files are deleted
    rc, err = _cli(capsys, "train", *SMALL, "--out", str(run_copy), "--resume", "--force")
    assert rc == 2 and "contradict" in err


# -- 2. the best score on resume is the best model's, not the last checkpoint's

def test_resume_keeps_a_best_model_newer_than_the_last_checkpoint(run_copy: Path) -> None:
    from agents.evaluation import Setup
    from agents.training import TrainConfig, train_sb3
    from envs import default_inputs

    best_before = json.loads((run_copy / "train.json").read_text())["best_val_accuracy"]
    # as after a kill between a validation that saved a better best_model.zip and the next checkpoint: the
    # checkpoint's state predates that best model (here: it has seen no validation at all)
    state_path = run_copy / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "best_accuracy": -1.0}))
    best_file = _snapshot(run_copy)["best_model.zip"]
    stored = json.loads((run_copy / "config.json").read_text())["train_config"]
    tcfg = TrainConfig.from_dict(stored)
    profile, traces = default_inputs()
    # no steps left: the resumed run only validates the last checkpoint's model, which is no better than the best
    train_sb3(Setup.create(profile, traces), run_copy, tcfg, resume=True, progress=False, log=lambda _: None)
    assert _snapshot(run_copy)["best_model.zip"] == best_file  # not overwritten by a worse model
    info = json.loads((run_copy / "train.json").read_text())
    assert info["best_val_accuracy"] == pytest.approx(best_before, abs=1e-12)


# -- 3. resume checks framework, algorithm and settings, and never rewrites config.json

@pytest.mark.parametrize(("flags", "named"), [
    (["--algo", "a2c"], "--algo a2c"),
    (["--algo", "dqn"], "--algo dqn"),
    (["--framework", "rllib"], "--framework sb3"),
    (["--n-envs", "4"], "--n-envs 4"),
    (["--seed", "3"], "--seed 3"),
])
def test_resume_with_other_settings_refuses(trained: Path, capsys, flags: list[str], named: str) -> None:
    before = _snapshot(trained)
    argv = ["train", "--timesteps", "2048", "--n-envs", "8", "--no-progress", "--out", str(trained), "--resume"]
    rc, err = _cli(capsys, *argv, *flags)
    assert rc == 2 and named in err, err
    assert _snapshot(trained) == before  # config.json included


def test_resume_records_itself_beside_the_unchanged_config(run_copy: Path, capsys) -> None:
    config = (run_copy / "config.json").read_bytes()
    # the run already has its 1,024 steps: the resume only re-scores the best model and validates once more
    rc, err = _cli(capsys, "train", *SMALL, "--out", str(run_copy), "--resume")
    assert rc == 0, err
    assert (run_copy / "config.json").read_bytes() == config
    resumes = _strict(run_copy / "resumes.json")
    assert len(resumes) == 1 and resumes[0]["timesteps"] == 1024 and resumes[0]["from_checkpoint"]
    assert "--resume" in resumes[0]["command"]
    assert json.loads((run_copy / "train.json").read_text())["timesteps"] == 1024


# -- 4. --resume on a folder without a run refuses

def test_resume_without_a_run_refuses(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "missing"):
        rc, err = _cli(capsys, "train", *SMALL, "--out", str(out), "--resume")
        assert rc == 2 and "holds no run to resume" in err and "leave out --resume" in err
    assert not (tmp_path / "missing").exists() and not any((tmp_path / "empty").iterdir())


# -- 5. strict JSON: null, not NaN

def test_train_and_state_json_are_strict(trained: Path) -> None:
    info = _strict(trained / "train.json")
    _strict(trained / "checkpoints" / "state.json")
    # the first validations come before any 300-frame episode ends: no training reward yet
    assert info["history"][0]["train_episode_reward"] is None
    assert (trained / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_write_json_turns_non_finite_into_null(tmp_path: Path) -> None:
    from offload_common.files import write_json

    write_json(tmp_path / "x.json", {"a": [float("nan"), 1.5, float("inf")], "b": {"c": -float("inf")}})
    assert _strict(tmp_path / "x.json") == {"a": [None, 1.5, None], "b": {"c": None}}


# -- 6. reports: argument checked first, files built aside and swapped in whole

def test_evaluate_with_no_policies_fails_before_any_work(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ev"
    t0 = time.time()
    rc, err = _cli(capsys, "evaluate", "--policies", "", "--out", str(out))
    assert rc == 2 and "--policies" in err and "no policy names" in err
    rc, err = _cli(capsys, "evaluate", "--policies", "local,nonsense", "--out", str(out))
    assert rc == 2 and "unknown nonsense" in err
    assert time.time() - t0 < 20 and not out.exists()


def test_a_failing_report_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    from agents.evaluation import write_report

    res, means, actions = hand_results()
    out = tmp_path / "report"
    write_report(res, out, means, actions)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"report.json", "report.md", "report_meta.json", "latency_cdf.png"} <= set(before)
    with pytest.raises(IndexError):  # plotting fails (one throughput per trace expected), after the JSON is built
        write_report(res, out, means[:1], actions)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary folder left behind
    with pytest.raises(ValueError, match="no policies"):
        write_report({}, out, means, actions)
    # a new report replaces the old one; a PNG the project did not write (not in its manifest) is not its to delete
    (out / "stale.png").write_bytes(b"old")
    write_report(res, out, means, actions)
    assert (out / "stale.png").read_bytes() == b"old" and (out / "report.md").exists()


def test_report_in_a_folder_with_other_files_replaces_only_report_files(tmp_path: Path) -> None:
    from agents.evaluation import write_report

    res, means, actions = hand_results()
    (tmp_path / "model.zip").write_bytes(b"keep")
    write_report(res, tmp_path, means, actions)
    assert (tmp_path / "model.zip").read_bytes() == b"keep" and (tmp_path / "report.md").exists()


# -- 7. every argument is checked before any work, naming its flag

@pytest.mark.parametrize("argv", [
    ["run", "--episodes", "0"], ["run", "--episodes", "-3"], ["run", "--timesteps", "0"],
    ["train", "--n-envs", "0"], ["train", "--framework", "rllib", "--iterations", "0"],
    ["train", "--framework", "rllib", "--num-env-runners", "-1"], ["evaluate", "--episodes", "0"],
    ["train", "--seed", "-1"], ["train", "--timesteps", "many"], ["train", "--framework", "rllib", "--address", "x"],
    ["train", "--traces", ""], ["train", "--out", ""], ["evaluate", "--profile", ""], ["export", "run", "-o", ""],
])
def test_bad_arguments_fail_at_once_naming_the_flag(argv: list[str], capsys, tmp_path: Path) -> None:
    t0 = time.time()
    rc, err = _cli(capsys, *argv)
    flag = [a for a in argv if a.startswith("--") or a == "-o"][-1]
    assert rc == 2 and f"argument {flag}" in err, err
    assert time.time() - t0 < 5


# -- 8. output paths are checked before any computation

def test_out_that_is_a_file_or_under_a_file_fails_at_once(tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    for cmd in (["train", *SMALL], ["run", *SMALL, "--episodes", "1"], ["evaluate", "--policies", "local"]):
        t0 = time.time()
        rc, err = _cli(capsys, *cmd, "--out", str(a_file))
        assert rc == 2 and "--out" in err and "is an existing file" in err, err
        rc, err = _cli(capsys, *cmd, "--out", str(a_file / "sub"))
        assert rc == 2 and "is a file, so no folder can be made under it" in err, err
        assert time.time() - t0 < 10
    assert a_file.read_text() == "x"


def test_read_only_out_fails_at_once() -> None:
    """As an unprivileged user (root writes into read-only folders, so as root the CLI runs as nobody)."""
    import subprocess
    import sys
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="ro-check-"))  # not under pytest's 0700 tmp folder: nobody must reach it
    ro = base / "ro"
    ro.mkdir()
    base.chmod(0o755)
    ro.chmod(0o555)
    root = Path(__file__).resolve().parents[1]
    code = "import sys, train_agent; sys.exit(train_agent.main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "train", *SMALL, "--out", str(ro / "run")]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "cannot write there" in proc.stderr, proc.stderr[-2000:]
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)
        shutil.rmtree(base)


def test_export_output_paths(trained: Path, tmp_path: Path, capsys) -> None:
    rc, err = _cli(capsys, "export", str(trained), "-o", str(tmp_path))
    assert rc == 2 and "-o/--output" in err and "is a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no stray temporary file
    assert not list(trained.glob("*.tmp")) and not list(trained.glob(".*.tmp"))
    target = tmp_path / "new" / "deeper" / "policy.onnx"
    rc, err = _cli(capsys, "export", str(trained), "-o", str(target))
    assert rc == 0, err
    assert target.read_bytes()[:2] and sorted(p.name for p in target.parent.iterdir()) == ["policy.onnx"]


# -- 10. inputs: errors name the file and the cause

def test_corrupt_train_json_names_the_file(run_copy: Path, capsys) -> None:
    info = run_copy / "train.json"
    info.write_text(info.read_text()[:40])
    rc, err = _cli(capsys, "export", str(run_copy))
    assert rc == 2 and f"{info}:" in err and "not valid JSON" in err
    rc, err = _cli(capsys, "evaluate", "--policies", "local", "--runs", str(run_copy), "--out",
                   str(run_copy.parent / "ev"))
    assert rc == 2 and f"{info}:" in err


def _trace_file(tmp_path: Path, data: bytes, name: str = "t") -> Path:
    path = tmp_path / "fam" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("data", "line", "cause"), [
    (gzip.compress(b"0 1.0\n1 2.0\n"), None, "gzip-compressed"),
    (b"\xef\xbb\xbf0 1.0\n1 2.0\n", None, "UTF-8 byte-order mark"),
    (b"\xff\xfe0\x00 \x001\x00", None, "UTF-16"),
    (b"0,1.0\n1,2.0\n", 1, "comma-separated"),
    (b"time_s,mbps\n0,1.0\n", 1, "CSV"),
    (b"0 1.0\n1 2.0\n2 1e300\n", 3, "above 10000 Mbit/s"),
    (b"0 1.0\n1 20000\n", 2, "10 Gbit/s"),
    (b"0 1.0\n1 inf\n", 2, "finite"),
    (b"0 1.0\n1 2.0\n2 caf\xc3\xa9\n", 3, "not plain ASCII text: byte 0xc3"),
    (b"5\n" + b"7\n" * 100_000 + b"9\n", 1, "above 10000 Mbit/s"),
    (b"0\n99999999999999\n", 2, "absurdly long"),
])
def test_trace_errors_name_file_line_and_cause(tmp_path: Path, data: bytes, line: int | None, cause: str) -> None:
    path = _trace_file(tmp_path, data)
    with pytest.raises(TraceFormatError) as info:
        load_traces(path)
    assert str(path) in str(info.value) and cause in str(info.value), str(info.value)
    assert info.value.line == line


def test_empty_trace_path_is_refused(capsys) -> None:
    with pytest.raises(ValueError, match="trace path is empty"):
        load_traces("")
    rc, err = _cli(capsys, "traces", "--traces", "")
    assert rc == 2 and "argument --traces" in err


def test_trace_error_reaches_the_cli_with_file_and_line(tmp_path: Path, capsys) -> None:
    path = _trace_file(tmp_path, b"0 1.0\n1 1e300\n")
    rc, err = _cli(capsys, "traces", "--traces", str(path.parent))
    assert rc == 2 and f"{path}:2:" in err
