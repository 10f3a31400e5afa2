"""Ray on this machine: the fenced internals (``agents.training.ray_cluster``), a local Ray that listens on
loopback only, and ``map_on_ray`` (``agents.training.ray_tasks``) equal to the local serial loop.

One local Ray serves the module (started by ``init_ray``, as training starts it; stopped by ``ray.shutdown`` at the
end). The socket check lists every listening TCP and UDP socket of this process and its descendants (the GCS,
raylet, agents and workers Ray started) from ``/proc``, so it sees what ``ss -ltnp`` shows.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="install the 'rllib' extra")

import ray  # noqa: E402
from ray import cloudpickle  # noqa: E402

from agents.training.ray_cluster import (  # noqa: E402
    TESTED_RAY,
    ClusterConnectError,
    RayVersionError,
    check_cluster,
    check_ray_version,
    enable_token_auth,
    init_ray,
    internals_tested,
    is_loopback,
    ray_version,
)
from agents.training.ray_tasks import TaskFailed, WorkerInputs, map_on_ray  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module by name


# --- the fence: version check and the private calls it guards -------------------------------------------------


def test_installed_ray_is_the_tested_one() -> None:
    # the pin in pyproject ('rllib' extra) and TESTED_RAY must move together: this fails on a Ray nobody tested
    assert internals_tested(), f"Ray {ray_version()} outside TESTED_RAY {TESTED_RAY}"
    assert ray_version() == tuple(int(p) for p in ray.__version__.split(".")[:2])


@pytest.mark.parametrize("found", [(2, 58), (2, 61), (3, 0)])
def test_private_ray_calls_are_refused_outside_the_tested_range(found: tuple[int, int]) -> None:
    with pytest.raises(RayVersionError, match=rf"found Ray {found[0]}\.{found[1]}.*install ray\[rllib\]"):
        check_ray_version("the thing", found)
    assert not internals_tested(found)
    check_ray_version("the thing", TESTED_RAY[1])  # the range's ends pass


def test_token_mode_reloads_in_an_imported_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """The private reload really switches the imported Ray's C++ config (what a driver joining a token cluster
    with RAY_AUTH_MODE unset needs); restored afterwards."""
    from ray._raylet import AuthenticationMode, Config, get_authentication_mode

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    Config.initialize("")
    try:
        assert get_authentication_mode() != AuthenticationMode.TOKEN
        monkeypatch.delenv("RAY_AUTH_MODE")
        enable_token_auth()
        assert os.environ["RAY_AUTH_MODE"] == "token"
        assert get_authentication_mode() == AuthenticationMode.TOKEN
    finally:
        monkeypatch.undo()
        Config.initialize("")


def test_check_cluster_names_an_address_nobody_answers() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterConnectError, match=rf"--address 127.0.0.1:{port}: no Ray cluster answers there"):
        check_cluster(f"127.0.0.1:{port}", timeout_s=5)


@pytest.mark.parametrize("host,want", [("127.0.0.1", True), ("127.3.0.1", True), ("::1", True),
                                       ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False),
                                       ("192.0.2.2", False), ("::ffff:192.0.2.2", False), ("fe80::1%eth0", False)])
def test_is_loopback(host: str, want: bool) -> None:
    assert is_loopback(host) is want


# --- a local Ray ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        pytest.fail("a Ray started by an earlier test is still running (tests that start Ray must ray.shutdown)")
    init_ray(num_cpus=2)
    try:
        yield
    finally:
        ray.shutdown()


def _hex_address(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def _listening() -> dict[int, tuple[str, str, int]]:
    """Socket inode -> (protocol, address, port) of every listening TCP and every bound UDP socket on the host."""
    out = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        path = Path("/proc/net") / proto
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            f = line.split()
            if proto.startswith("tcp") and f[3] != "0A":  # 0A: LISTEN
                continue
            host, port = f[1].split(":")
            out[int(f[9])] = (proto, _hex_address(host), int(port, 16))
    return out


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of ``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            out[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
        except OSError:
            continue
        todo += children.get(pid, [])
    return out


def _sockets_of(pids: dict[int, str]) -> list[tuple[int, str, str, str, int]]:
    listening = _listening()
    rows = []
    for pid, cmd in pids.items():
        try:
            fds = list((Path("/proc") / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in listening:
                rows.append((pid, cmd, *listening[int(target[8:-1])]))
    return rows


def test_local_ray_listens_on_loopback_only(local_ray) -> None:
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert map_on_ray(abs, [-1, -2]) == [1, 2]  # workers started and ran a task
    rows = _sockets_of(_descendants(os.getpid()))
    names = " ".join(cmd for _, cmd, *_ in rows)
    # the test can fail: it really sees Ray's servers (GCS, raylet: node manager and object manager, a worker)
    assert "gcs_server" in names and "raylet" in names and "ray::" in names, rows
    public = [r for r in rows if not is_loopback(r[3])]
    assert not public, "Ray listens beyond loopback:\n" + "\n".join(map(str, public))


# --- map_on_ray -------------------------------------------------------------------------------------------------


def _affine(a: int, x: int) -> int:
    return a * x + 1


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"three is bad ({x})")
    return x


def test_map_on_ray_equals_the_serial_loop_in_input_order(local_ray) -> None:
    items = [5, -2, 0, 7, 3, 11]
    fn = functools.partial(_affine, 3)
    assert map_on_ray(fn, items) == [fn(x) for x in items] == [16, -5, 1, 22, 10, 34]
    assert map_on_ray(fn, []) == []


def test_map_on_ray_failure_names_the_item(local_ray) -> None:
    with pytest.raises(TaskFailed, match=r"item #3 seed=3 failed: ValueError: three is bad \(3\)") as err:
        map_on_ray(_fails_on_three, [0, 1, 2, 3, 4], describe=lambda x: f"seed={x}")
    assert err.value.item == 3 and err.value.index == 3 and isinstance(err.value.__cause__, ValueError)


def test_map_on_ray_refuses_what_cannot_travel_before_starting_work() -> None:
    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"item #1 <the lock> cannot be sent"):
        map_on_ray(len, ["a", lock], describe=lambda x: "<the lock>" if x is lock else repr(x))
    with pytest.raises(TypeError, match=r"the function .* cannot be sent"):
        map_on_ray(lambda x: (lock, x), [1])
    with pytest.raises(TypeError, match="fn must be callable"):
        map_on_ray(3, [1])  # type: ignore[arg-type]


# a real unit of work: one seed's evaluation, rebuilt on the worker from paths and trace names


def _evaluate_seed(inputs: WorkerInputs, seed: int) -> float:
    from agents.evaluation import evaluate
    from agents.policies import baseline_policies

    setup = inputs.setup()
    policy = baseline_policies(setup.action_names(), seed)["random"]
    res = evaluate(policy, setup.factory("test"), setup.test_traces[:3], episodes=1, seed=seed)
    return res.metrics["all"]["accuracy"]


def _evaluate_seed_here(setup, seed: int) -> float:
    from agents.evaluation import evaluate
    from agents.policies import baseline_policies

    policy = baseline_policies(setup.action_names(), seed)["random"]
    res = evaluate(policy, setup.factory("test"), setup.test_traces[:3], episodes=1, seed=seed)
    return res.metrics["all"]["accuracy"]


def _trace_folder(root: Path) -> Path:
    """Five small cooked traces of one family (piecewise-constant, 0.5 to 12 Mbit/s, 60 s) under ``root``."""
    import numpy as np

    from bandwidth_traces import Trace, write_cooked

    rng = np.random.default_rng(7)
    (root / "cell").mkdir(parents=True)
    for i in range(5):
        times = np.arange(0.0, 60.0, 2.0)
        write_cooked(Trace(f"t{i}.txt", "cell", times, rng.uniform(0.5, 12.0, len(times)), 60.0),
                     root / "cell" / f"t{i}.txt")
    return root


def test_map_on_ray_seed_evaluations_equal_the_local_loop(local_ray, tmp_path: Path) -> None:
    from agents.evaluation import Setup
    from bandwidth_traces import load_traces
    from perception import DEFAULT_PROFILE, FrameProfile

    folder = _trace_folder(tmp_path / "traces")
    setup = Setup.create(FrameProfile.load(DEFAULT_PROFILE), load_traces(folder))  # the driver's own inputs
    inputs = WorkerInputs.of(DEFAULT_PROFILE, str(folder), 0, setup.train_traces + setup.test_traces)
    seeds = [0, 1, 2]
    serial = [_evaluate_seed_here(setup, s) for s in seeds]
    assert len(set(serial)) == len(seeds)  # the seed matters, so equal lists say something
    assert map_on_ray(functools.partial(_evaluate_seed, inputs), seeds) == serial


def test_worker_inputs_name_missing_traces(tmp_path: Path) -> None:
    from bandwidth_traces import shared_traces_dir

    source = shared_traces_dir()
    inputs = WorkerInputs(str(tmp_path / "unused.npz"), str(source) if source else "embedded", 0,
                          ("fcc/no-such-trace", "norway-hsdpa/neither"))
    with pytest.raises(ValueError, match=r"worker found 0 of 2 traces in .*same trace files"):
        inputs.load_traces()
