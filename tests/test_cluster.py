"""README "Scaling out" on one machine: a real `ray start --head` with token authentication, a second node, and
`train_agent.py train --framework rllib --address` joining it (slow: starts a Ray cluster and trains).

Everything stays on loopback: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` stops Ray from replacing 127.0.0.1 by the
machine's network address. HOME points at a temporary folder, so the cluster's token (``~/.ray/auth_token``) is the
test's own and the user's is never read or written. The test stops every process it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.rllib", reason="install the 'rllib' extra")

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, marker: str) -> None:
    """SIGTERM the process group, SIGKILL it after 15 s, then any process still naming our temp folder."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in _pids_naming(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 10  # SIGKILL is delivered asynchronously: give the killed processes time to go
    while _pids_naming(marker) and time.time() < deadline:
        time.sleep(0.2)


def _pids_naming(marker: str) -> list[int]:
    """Processes whose command line names ``marker`` (our cluster's temp folder): only what this test started."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def cluster(tmp_path: Path):
    """A head (`ray start --head`, token auth, no CPUs: it schedules nothing) and a worker node with 2 CPUs."""
    home = tmp_path / "home"
    home.mkdir()
    temp_dir = tempfile.mkdtemp(prefix="rayc", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    env = {**os.environ, "HOME": str(home), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(var, None)
    port = _free_port()
    # README: generate the token on the head, export RAY_AUTH_MODE=token on every node, start the head
    subprocess.run([str(RAY), "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    node_env = {**env, "RAY_AUTH_MODE": "token"}
    head = subprocess.Popen([str(RAY), "start", "--head", f"--port={port}", "--dashboard-host=127.0.0.1",
                             "--node-ip-address=127.0.0.1", "--num-cpus=0", "--include-dashboard=false",
                             f"--temp-dir={temp_dir}", "--disable-usage-stats", "--block"],
                            env=node_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    worker = None
    try:
        for line in head.stdout:
            if "Ray runtime started" in line:
                break
        else:
            pytest.fail("ray start --head exited before the runtime started")
        worker = subprocess.Popen([sys.executable, str(ROOT / "tests" / "ray_worker_node.py"), f"127.0.0.1:{port}",
                                   "2"], env=node_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  start_new_session=True)
        line = worker.stdout.readline()
        assert line.startswith("NODE "), "the second node did not start"
        yield {"address": f"127.0.0.1:{port}", "env": env, "worker_node": line.split()[1], "home": home}
    finally:
        if worker is not None:
            _stop(worker, temp_dir)
        _stop(head, temp_dir)
        assert not _pids_naming(temp_dir), "processes of the test cluster survived"
        subprocess.run(["rm", "-rf", temp_dir], check=False)


def _train(cluster: dict, out: Path, env: dict | None = None, timeout: int = 540) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "train_agent.py", "train", "--framework", "rllib", "--address", cluster["address"],
           "--num-env-runners", "2", "--iterations", "2", "--out", str(out)]
    return subprocess.run(cmd, cwd=ROOT, env=env or cluster["env"], capture_output=True, text=True, timeout=timeout)


_MAP_DRIVER = """
import json, sys
import ray
from agents.training.ray_tasks import map_on_ray

def square_plus_one(x):
    return [x * x + 1, ray.get_runtime_context().get_node_id()]

print(json.dumps({"results": map_on_ray(square_plus_one, [3, 1, 2, 0], sys.argv[1])}))
"""


@pytest.mark.slow
def test_readme_cluster_recipe_trains_on_a_second_node(cluster: dict, tmp_path: Path) -> None:
    # the driver as the issue ran it: no RAY_AUTH_MODE in its environment; it finds the token and uses it
    t0 = time.time()
    proc = _train(cluster, tmp_path / "rl")
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "rl" / "train.json").read_text())
    assert [h["iteration"] for h in info["history"]] == [1, 2] and info["address"] == cluster["address"]
    # sampling really ran on the other node; the learner ran in the driver, on the head's node
    assert info["env_runner_nodes"] == [cluster["worker_node"]]
    assert info["driver_node"] != cluster["worker_node"]
    print(f"two iterations through --address in {time.time() - t0:.0f} s")

    # map_on_ray through --address (the seeds/sweep primitive): same auth handling, tasks on the worker node,
    # results in input order and equal to the serial loop
    proc = subprocess.run([sys.executable, "-c", _MAP_DRIVER, cluster["address"]], cwd=ROOT, env=cluster["env"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["results"] == [[x * x + 1, cluster["worker_node"]] for x in (3, 1, 2, 0)]

    # run --seeds through --address: one Ray task per seed on the worker node, then one report from the driver
    small = tmp_path / "traces"
    for family in ("fcc", "norway-hsdpa"):
        (small / family).mkdir(parents=True)
        for src in sorted((ROOT.parent / "shared" / "traces" / family).iterdir())[:6]:
            (small / family / src.name).write_bytes(src.read_bytes())
    proc = subprocess.run([sys.executable, "train_agent.py", "run", "--seeds", "0,1", "--timesteps", "256",
                           "--n-envs", "1", "--episodes", "1", "--traces", str(small), "--address",
                           cluster["address"], "--out", str(tmp_path / "seeds"), "--no-progress"], cwd=ROOT,
                          env=cluster["env"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "seeds" / "report.json").read_text())
    assert {"ppo-seed0", "ppo-seed1", "ppo (2 seeds)"} <= set(report)
    for seed in (0, 1):
        assert (tmp_path / "seeds" / f"seed{seed}" / "policy.onnx").is_file()

    # a wrong token fails at once with its cause, not after Ray's retry loop
    t0 = time.time()
    proc = _train(cluster, tmp_path / "bad", env={**cluster["env"], "RAY_AUTH_TOKEN": "0" * 32}, timeout=120)
    assert proc.returncode == 2 and "rejected the token" in proc.stderr and "auth_token" in proc.stderr
    # no token on this machine at all
    (cluster["home"] / ".ray" / "auth_token").rename(cluster["home"] / "token.bak")
    proc = _train(cluster, tmp_path / "none", timeout=120)
    assert proc.returncode == 2 and "has no token" in proc.stderr
    # nobody at that address
    proc = _train({**cluster, "address": f"127.0.0.1:{_free_port()}"}, tmp_path / "nobody", timeout=120)
    assert proc.returncode == 2 and "no Ray cluster answers there" in proc.stderr
    assert time.time() - t0 < 90
    assert not any((tmp_path / name).exists() for name in ("bad", "none", "nobody"))  # nothing written
