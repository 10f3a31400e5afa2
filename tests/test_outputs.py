"""Issue #24, parts 3 and 4: outputs never destroy what they do not own, and the last bad inputs of the probe.

Outputs: a result replaces only a regular file or a missing path (never a device, FIFO or socket), commands other
than train / run never write into a run folder, only files the project recorded in a folder's manifest are ever
deleted, results get ordinary modes, and temporaries of a killed writer are cleaned by the next one. Inputs: profile
arrays, ONNX metadata, run records, traces, reset options and path kinds are checked with errors naming what is
wrong; run folders are locked; huge seed lists and sweeps are capped; a killed sweep resumes; a full disk says the
run is resumable. Every test here fails on the code before the issue's fix.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL, hand_results
from helpers import run_cli as _cli
from helpers import snapshot as _snapshot


def _is_fifo(path: Path) -> bool:
    return stat.S_ISFIFO(os.lstat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- 3. outputs: only regular files or missing paths are replaced --------------------------------------------------

def test_check_output_file_refuses_fifos_and_sockets_naming_them(tmp_path: Path) -> None:
    from offload_common.files import check_output_file

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"-o .*pipe: is a FIFO"):
        check_output_file(fifo, "-o")
    sock_path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(sock_path))
        with pytest.raises(ValueError, match="is a socket"):
            check_output_file(sock_path, "--out")
    finally:
        sock.close()
    assert _is_fifo(fifo)
    device = tmp_path / "null"  # a character device node of our own (major 1, minor 3), never /dev/null itself
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (PermissionError, OSError):
        return  # no CAP_MKNOD here: the FIFO and the socket stand for every non-regular file
    with pytest.raises(ValueError, match="null: is a character device"):
        check_output_file(device, "-o")
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_atomic_write_checks_again_right_before_replacing(tmp_path: Path) -> None:
    """A FIFO that appears at the target while the result is being written is left alone, not replaced."""
    from offload_common.files import atomic_path

    target = tmp_path / "result.json"
    with pytest.raises(ValueError, match="is a FIFO"):
        with atomic_path(target) as tmp:
            tmp.write_text("{}")
            os.mkfifo(target)  # made after the first check, before the replace
    assert _is_fifo(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # the temporary is gone too


def test_export_onto_a_fifo_is_refused_and_the_fifo_stays(trained: Path, tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "policy.onnx"
    os.mkfifo(fifo)
    rc, err = _cli(capsys, "export", str(trained), "-o", str(fifo))
    assert rc == 2 and "-o/--output" in err and "is a FIFO" in err, err
    assert _is_fifo(fifo)


def test_traces_plot_onto_a_fifo_is_refused_and_the_fifo_stays(tmp_path: Path, capsys) -> None:
    from bandwidth_traces.__main__ import main as traces_main

    trace = tmp_path / "fam" / "t"
    trace.parent.mkdir()
    trace.write_text("0 1.0\n1 2.0\n2 0.5\n")
    fifo = tmp_path / "plot.png"
    os.mkfifo(fifo)
    assert traces_main(["plot", str(trace), "-o", str(fifo)]) == 2
    err = capsys.readouterr().err
    assert "-o/--out" in err and "is a FIFO" in err, err
    assert _is_fifo(fifo)


# ---- 3. commands other than train / run never write into a run folder -------------------------------------------

@pytest.mark.parametrize("argv", [
    ["evaluate", "--policies", "local"],
    ["sweep", "--policies", "local"],
    ["train", "--framework", "rllib", "--tune", "--iterations", "1"],
])
def test_evaluate_sweep_and_tune_into_a_run_folder_are_refused(trained: Path, argv: list[str], capsys) -> None:
    before = _snapshot(trained)
    t0 = time.time()
    rc, err = _cli(capsys, *argv, "--out", str(trained))
    assert rc == 2 and f"--out {trained} holds a training run" in err, err
    assert time.time() - t0 < 10
    assert _snapshot(trained) == before


# ---- 3. only files the project recorded are deleted -----------------------------------------------------------------

def test_rewriting_a_report_keeps_a_users_own_png(tmp_path: Path) -> None:
    from agents.evaluation import write_report

    res, means, actions = hand_results()
    out = tmp_path / "report"
    write_report(res, out, means, actions)
    (out / "my_figure.png").write_bytes(b"\x89PNG mine")
    write_report(res, out, means, actions)
    assert (out / "my_figure.png").read_bytes() == b"\x89PNG mine"
    assert (out / "latency_cdf.png").read_bytes()[:4] == b"\x89PNG"
    # a PNG the project recorded for something else (a run's learning curve) is not the report's either
    manifest = json.loads((out / ".offload-gym-files.json").read_text())
    (out / "learning_curve.png").write_bytes(b"\x89PNG curve")
    manifest["files"].append("learning_curve.png")
    (out / ".offload-gym-files.json").write_text(json.dumps(manifest))
    write_report(res, out, means, actions)
    assert (out / "learning_curve.png").read_bytes() == b"\x89PNG curve" and (out / "my_figure.png").exists()


def test_force_deletes_only_what_the_run_recorded(run_copy: Path) -> None:
    from agents.training.runs import clear_run, holds_run

    (run_copy / "my_plot.png").write_bytes(b"\x89PNG mine")
    (run_copy / "notes.txt").write_text("mine")
    assert (run_copy / "learning_curve.png").exists()
    clear_run(run_copy)
    assert (run_copy / "my_plot.png").read_bytes() == b"\x89PNG mine"
    assert (run_copy / "notes.txt").read_text() == "mine"
    assert not holds_run(run_copy) and not (run_copy / "learning_curve.png").exists()
    assert not (run_copy / "tb").exists() and not (run_copy / "checkpoints").exists()


# ---- 3. results are readable like ordinary files --------------------------------------------------------------------

def test_results_get_ordinary_modes_under_the_umask(tmp_path: Path, umask_022) -> None:
    from agents.evaluation import write_report
    from offload_common.files import write_json

    write_json(tmp_path / "a.json", {"x": 1})
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    res, means, actions = hand_results()
    write_report(res, tmp_path / "report", means, actions)
    assert stat.S_IMODE((tmp_path / "report").stat().st_mode) == 0o755
    for name in ("report.json", "report.md", "latency_cdf.png"):
        assert stat.S_IMODE((tmp_path / "report" / name).stat().st_mode) == 0o644, name
    os.umask(0o077)  # a stricter umask is honoured
    write_json(tmp_path / "b.json", {"x": 1})
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600


# ---- 3. temporaries of a killed writer are cleaned by the next run of the same command -----------------------------

def test_export_removes_temporaries_a_killed_export_left(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "policy.onnx"
    dead = _dead_pid()
    stale = [tmp_path / ".policy.onnx.k3j9x_2a.tmp.onnx", tmp_path / f".policy.onnx.{dead}-ab12cd34.tmp.onnx"]
    live = tmp_path / f".policy.onnx.{os.getpid()}-zz99yy88.tmp.onnx"  # a concurrent writer's: kept
    other = tmp_path / ".other.onnx.k3j9x_2a.tmp.onnx"  # another target's: kept
    for p in [*stale, live, other]:
        p.write_bytes(b"partial")
    rc, err = _cli(capsys, "export", str(trained), "-o", str(out))
    assert rc == 0, err
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists() and out.stat().st_size > 1000


def test_report_removes_build_folders_a_killed_evaluate_left(tmp_path: Path) -> None:
    from agents.evaluation import write_report

    res, means, actions = hand_results()
    stale = tmp_path / ".report.build-q8w2e4r1"
    stale.mkdir()
    (stale / "report.json").write_text("{")
    live = tmp_path / f".report.build-{os.getpid()}-abcd1234"
    live.mkdir()
    write_report(res, tmp_path / "report", means, actions)
    assert not stale.exists() and live.exists()
    assert json.loads((tmp_path / "report" / "report.json").read_text())


# ---- 4. profile arrays: dtypes and value ranges are checked on load ---------------------------------------------

def _tampered_profile(tmp_path: Path, name: str, value) -> Path:
    from helpers import hand_profile

    path = hand_profile().save(tmp_path / "p.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arr = arrays[name].astype(np.asarray(value).dtype)
    arr.flat[0] = value
    arrays[name] = arr
    bad = tmp_path / "bad.npz"
    with open(bad, "wb") as fh:
        np.savez(fh, **arrays)
    return bad


@pytest.mark.parametrize(("name", "value", "cause"), [
    ("student_correct", 0.4, "must hold booleans"),
    ("server_correct", 7, "must hold booleans"),
    ("teacher_correct", -1, "must hold booleans"),
    ("label", 70_000, "outside the range of its stored type int16"),
    ("teacher_pred", 3.5, "must hold whole numbers"),
])
def test_profile_arrays_of_the_wrong_kind_are_refused_naming_the_array(tmp_path: Path, name: str, value,
                                                                       cause: str) -> None:
    from perception import FrameProfile, ProfileFormatError

    bad = _tampered_profile(tmp_path, name, value)
    with pytest.raises(ProfileFormatError) as info:
        FrameProfile.load(bad)
    assert str(bad) in str(info.value) and repr(name) in str(info.value) and cause in str(info.value), str(info.value)


# ---- 4. ONNX metadata is checked against the graph ------------------------------------------------------------------

def _tiny_onnx(path: Path, n_in: int, n_out: int, fields: str, actions: str) -> Path:
    """A linear policy graph obs [batch, n_in] -> logits [batch, n_out], action [batch], with the given metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(n_in, n_out)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "w"], ["logits"]),
         helper.make_node("ArgMax", ["logits"], ["action"], axis=1, keepdims=0)], "policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out]),
         helper.make_tensor_value_info("action", TensorProto.INT64, ["batch"])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (("observation_fields", fields), ("action_names", actions)):
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))
    return path


def test_onnx_metadata_must_describe_the_graph(tmp_path: Path) -> None:
    from agents.deploy import OnnxPolicy

    names = json.dumps([f"f{i}" for i in range(52)])
    seven = json.dumps([f"a{i}" for i in range(7)])
    good = OnnxPolicy(_tiny_onnx(tmp_path / "good.onnx", 52, 7, names, seven))
    assert good.act(np.zeros((3, 52), np.float32)).shape == (3,)
    with pytest.raises(ValueError, match=r"'action_names' lists 2 actions .* 'logits' has 7"):
        OnnxPolicy(_tiny_onnx(tmp_path / "a.onnx", 52, 7, names, json.dumps(["local", "teacher"])))
    with pytest.raises(ValueError, match=r"'observation_fields' lists 49 fields, but the graph's input 'obs' has 52"):
        OnnxPolicy(_tiny_onnx(tmp_path / "o.onnx", 52, 7, json.dumps([f"f{i}" for i in range(49)]), seven))
    with pytest.raises(ValueError, match=r"metadata 'action_names' is not valid JSON"):
        OnnxPolicy(_tiny_onnx(tmp_path / "j.onnx", 52, 7, names, '["local", "teach'))
    with pytest.raises(ValueError, match=r"metadata 'observation_fields' is .* expected a non-empty JSON list"):
        OnnxPolicy(_tiny_onnx(tmp_path / "d.onnx", 52, 7, '{"a": 1}', seven))


# ---- 4. run folders are locked ---------------------------------------------------------------------------------------

def test_a_second_writer_of_a_run_is_refused_naming_the_pid(run_copy: Path, capsys) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_copy / ".offload-gym.lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        before = _snapshot(run_copy)
        rc, err = _cli(capsys, "train", *SMALL, "--timesteps", "2048", "--out", str(run_copy), "--resume")
        assert rc == 2 and f"PID {holder.pid}" in err and "another process" in err, err
        assert _snapshot(run_copy) == before
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_dead_writer_is_taken_over(tmp_path: Path) -> None:
    from agents.training import lock_run, release_run_lock

    out = tmp_path / "run"
    out.mkdir()
    (out / ".offload-gym.lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    lock = lock_run(out)
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    release_run_lock(out)
    assert not lock.exists()


# ---- 4. caps on seeds and sweeps, overridable -----------------------------------------------------------------------

def test_huge_seed_lists_are_capped_with_an_override(tmp_path: Path, capsys) -> None:
    from agents.evaluation import check_seed_count

    seeds = ",".join(map(str, range(1000)))
    t0 = time.time()
    rc, err = _cli(capsys, "train", *SMALL, "--seeds", seeds, "--out", str(tmp_path / "s"))
    assert rc == 2 and "1000 seeds" in err and "--max-seeds 1000" in err, err
    assert time.time() - t0 < 5 and not (tmp_path / "s").exists()
    check_seed_count(list(range(1000)), 1000)  # the override lets them through
    a_file = tmp_path / "f"
    a_file.write_text("x")
    rc, err = _cli(capsys, "train", *SMALL, "--seeds", seeds, "--max-seeds", "1000", "--out", str(a_file))
    assert rc == 2 and "--max-seeds" not in err and "--out" in err, err  # past the cap, the next check speaks


def test_huge_sweeps_are_capped_with_an_override(tmp_path: Path, capsys) -> None:
    from agents.evaluation import check_sweep_size

    scales = ",".join(f"{0.1 * i:.1f}" for i in range(1, 101))
    rc, err = _cli(capsys, "sweep", "--bandwidth-scales", scales, "--traces", "embedded", "--out",
                   str(tmp_path / "sw"))
    assert rc == 2 and "--max-evaluations" in err and "evaluations" in err, err
    assert not (tmp_path / "sw").exists()
    check_sweep_size(105, 6, 630)  # the override lets it through
    with pytest.raises(ValueError, match="--max-evaluations 630"):
        check_sweep_size(105, 6, 400)


# ---- 4. a killed sweep keeps its finished points and resumes ----------------------------------------------------

def test_a_killed_sweep_resumes_from_its_finished_points(tmp_path: Path) -> None:
    from helpers import constant_trace, hand_profile

    from agents.evaluation import run_sweep
    from envs import EnvConfig

    prof = hand_profile(n_clips=6)
    train = [constant_trace(8.0, name="a"), constant_trace(0.5, 50.0, "b")]
    test = [constant_trace(4.0, name="c"), constant_trace(1.0, 50.0, "d")]
    cfg = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0, device_ms=0.0, request_ms=0.0, episode_frames=10)
    args = (prof, train, test, cfg, ["local", "offload@100", "oracle"], {}, [], [0.5, 1.0, 2.0], [100.0, 200.0], 1, 0)
    whole = run_sweep(*args, log=lambda _: None)
    partial = tmp_path / "sweep" / "sweep-partial.json"

    class Killed(Exception):
        pass

    def kill_after_two(line: str) -> None:
        if line.startswith("point 2:"):
            raise Killed

    with pytest.raises(Killed):
        run_sweep(*args, log=kill_after_two, partial=partial)
    lines: list[str] = []
    resumed = run_sweep(*args, log=lines.append, partial=partial)
    assert sum("reused" in line for line in lines) == 2 and len(lines) == len(whole["points"])
    assert resumed["entries"] == whole["entries"]
    assert [p["tuning"] for p in resumed["points"]] == [p["tuning"] for p in whole["points"]]
    # another sweep (other episodes) does not reuse those points
    lines.clear()
    run_sweep(*args[:-2], 2, 0, log=lines.append, partial=partial)
    assert not any("reused" in line for line in lines)


# ---- 4. profile: corrupt images, wrong path kinds and a folder as -o fail before any model work -------------------

@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two photos and their labels; loading the models (the first model work of a build) fails the test."""
    from PIL import Image

    import perception.build as build

    folder = tmp_path / "photos"
    folder.mkdir()
    for wnid in ("n01440764", "n01443537"):
        Image.new("RGB", (64, 48), (120, 80, 40)).save(folder / f"{wnid}_x.JPEG")
    (tmp_path / "photos-labels.tsv").write_text("0\tn01440764\ttench\n1\tn01443537\tgoldfish\n")

    class NoModelWork:
        def __init__(self, *a, **k):
            raise AssertionError("model work started before the inputs and the output were checked")

    monkeypatch.setattr(build, "_Models", NoModelWork)
    return folder


def test_a_corrupt_photo_is_named_before_any_model_work(photos: Path, tmp_path: Path, capsys) -> None:
    good = (photos / "n01443537_x.JPEG").read_bytes()
    (photos / "n01443537_x.JPEG").write_bytes(good[: len(good) // 3])  # truncated
    rc, err = _cli(capsys, "profile", "--images", str(photos), "-o", str(tmp_path / "p.npz"))
    assert rc == 2 and f"{photos / 'n01443537_x.JPEG'}: cannot be decoded" in err, err


def test_profile_out_onto_a_folder_is_refused_before_any_model_work(photos: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "folder").mkdir()
    rc, err = _cli(capsys, "profile", "--images", str(photos), "-o", str(tmp_path / "folder"))
    assert rc == 2 and "-o/--out" in err and "is a folder" in err, err


def test_wrong_path_kinds_say_what_the_path_is_and_what_was_expected(photos: Path, tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    rc, err = _cli(capsys, "evaluate", "--profile", str(tmp_path), "--policies", "local", "--out",
                   str(tmp_path / "ev"))
    assert rc == 2 and "is a folder; expected a frame profile .npz file" in err, err
    rc, err = _cli(capsys, "traces", "--traces", str(fifo))
    assert rc == 2 and "is a FIFO (named pipe); expected a trace file or a folder" in err, err
    rc, err = _cli(capsys, "profile", "--video", str(tmp_path), "-o", str(tmp_path / "v.npz"))
    assert rc == 2 and "--video" in err and "is a folder; expected a video file" in err, err
    rc, err = _cli(capsys, "profile", "--images", str(a_file), "-o", str(tmp_path / "i.npz"))
    assert rc == 2 and "--images" in err and "is a regular file; expected a folder of" in err, err


# ---- 4. a full disk during training says the run is resumable ------------------------------------------------------

def test_disk_full_during_training_says_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import stable_baselines3

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(stable_baselines3.PPO, "save", full)
    out = tmp_path / "run"
    rc, err = _cli(capsys, "train", *SMALL, "--out", str(out))
    assert rc == 2 and "no space left on device" in err and "--resume" in err and str(out) in err, err
    assert not list(out.glob(".*.tmp*"))  # nothing half-written left beside the run


# ---- 4. run records: wrong shapes are named, failed resumes are not logged, no duplicated history ----------------

def test_a_config_json_that_is_not_an_object_is_named(run_copy: Path, capsys) -> None:
    (run_copy / "config.json").write_text("[1, 2]\n")
    rc, err = _cli(capsys, "train", *SMALL, "--out", str(run_copy), "--resume")
    assert rc == 2 and f"{run_copy / 'config.json'}: run config holds a JSON list" in err, err


def test_a_state_json_without_history_is_named_and_the_resume_not_logged(run_copy: Path, capsys) -> None:
    state_path = run_copy / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    del state["history"]
    state_path.write_text(json.dumps(state))
    rc, err = _cli(capsys, "train", *SMALL, "--timesteps", "2048", "--out", str(run_copy), "--resume")
    assert rc == 2 and f"{state_path}: checkpoint state has no 'history'" in err, err
    assert not (run_copy / "resumes.json").exists()  # a resume that failed is not in the log


def test_a_resume_that_dies_is_not_logged(run_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import stable_baselines3

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(stable_baselines3.PPO, "save", full)
    rc, err = _cli(capsys, "train", *SMALL, "--timesteps", "1536", "--out", str(run_copy), "--resume")
    assert rc == 2 and "no space left" in err, err
    assert not (run_copy / "resumes.json").exists()


def test_a_resume_past_its_target_does_not_duplicate_history(run_copy: Path, capsys) -> None:
    history = json.loads((run_copy / "train.json").read_text())["history"]
    rc, err = _cli(capsys, "train", *SMALL, "--timesteps", "512", "--out", str(run_copy), "--resume")
    assert rc == 0, err
    assert json.loads((run_copy / "train.json").read_text())["history"] == history
    resumes = json.loads((run_copy / "resumes.json").read_text())
    assert len(resumes) == 1 and resumes[0]["timesteps"] == 512


# ---- 4. traces and reset options --------------------------------------------------------------------------------

def test_a_trace_time_of_1e308_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    from bandwidth_traces import TraceFormatError, load_traces

    path = tmp_path / "fam" / "t"
    path.parent.mkdir()
    path.write_text("0 1.0\n1e308 2.0\n")
    with pytest.raises(TraceFormatError) as info:
        load_traces(path)
    assert f"{path}:2:" in str(info.value) and "1e308" in str(info.value)


@pytest.mark.parametrize(("options", "named"), [
    ({"pieces": "abc"}, "'pieces'"),
    ({"pieces": [[0, 0.5, 2]]}, "'pieces'"),
    ({"trace": 1.5}, "'trace'"),
    ({"trace": True}, "'trace'"),
    ({"trace": "0"}, "'trace'"),
    ({"scenes": [0.5]}, "'scenes'"),
    ({"start_s": "now"}, "'start_s'"),
])
def test_bad_reset_options_are_errors_not_truncations(options: dict, named: str) -> None:
    from helpers import constant_trace, hand_profile

    from envs import EnvConfig, OffloadEnv

    env = OffloadEnv(hand_profile(n_clips=3, frames=6), [constant_trace(8.0), constant_trace(1.0, name="b")],
                     EnvConfig(fps=10, episode_frames=5, profile_split="all", trace_split="all"))
    with pytest.raises(ValueError, match=named):
        env.reset(seed=0, options=options)
    _, info = env.reset(seed=0, options={"trace": 1, "pieces": [[0, 0, 6]]})
    assert info["trace"] == 1 and env.episode()["pieces"].tolist() == [[0, 0, 6]]
