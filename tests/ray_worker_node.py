"""A second Ray node on this machine, on loopback only, for tests/test_cluster.py.

``python tests/ray_worker_node.py GCS_ADDRESS NUM_CPUS`` starts a raylet that joins the cluster at GCS_ADDRESS with
node IP 127.0.0.1, prints ``NODE <node id>`` and stays up until SIGTERM, when it stops the processes it started.
This is what ``ray.cluster_utils.Cluster.add_node`` does for a worker node; ``ray start --address`` cannot be used
here because on Linux it replaces 127.0.0.1 by the machine's network address, and with that replacement switched
off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which the test sets so nothing leaves loopback) it refuses to start
a worker node. The token comes from the environment, as for any Ray process (``RAY_AUTH_MODE=token``).
"""

from __future__ import annotations

import signal
import sys
import time


def main() -> None:
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    params = RayParams(gcs_address=sys.argv[1], node_ip_address="127.0.0.1", num_cpus=int(sys.argv[2]), num_gpus=0,
                       object_store_memory=150 * 1024**2, min_worker_port=0, max_worker_port=0,
                       include_log_monitor=False, node_manager_port=0)
    params.dashboard_agent_listen_port = None
    node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    print("NODE", node.node_id, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit runs Node's shutdown hook
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
