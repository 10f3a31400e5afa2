"""Starting or joining Ray: the one module that touches Ray's internals, each behind ``check_ray_version``.

``init_ray()`` starts a local Ray bound to loopback only; ``init_ray(address)`` joins a cluster after
``check_cluster`` asked its GCS, in a second, whether it wants a token and whether ours is right. Everything the
project does with Ray (RLlib training, Tune, ``ray_tasks.map_on_ray``) starts Ray through here.

Ray's public surface does not cover three things, so this module uses what Ray itself uses, tested with the Ray
versions in ``TESTED_RAY``:

- **Loopback.** On Linux, Ray replaces a node IP of 127.0.0.1 by the machine's network address
  (``ray._private.services.resolve_ip_for_localhost``) unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` was set
  before Ray was imported; the GCS, raylet, object manager, workers and agents then bind that address (or all
  interfaces). ``init_ray`` switches the flag Ray read from that variable (``ray_constants.ENABLE_RAY_CLUSTER``)
  off for the duration of the local ``ray.init`` only, so the node IP stays 127.0.0.1 and every component binds
  loopback; after start it checks the node IP through the public ``ray.util.get_node_ip_address`` and refuses to
  go on otherwise.
- **Token mode after import.** Ray reads ``RAY_AUTH_MODE`` once, when ``ray`` is imported. Joining a cluster that
  wants a token, with the variable unset, sets it; if Ray is already imported its cached config and token are
  reloaded (``ray._raylet.Config.initialize``, ``AuthenticationTokenLoader.reset_cache``: what ``ray start --head``
  does itself).
- **The cluster check** calls the GCS's ``NodeInfoGcsService/GetClusterId`` RPC with plain gRPC (the request is
  the empty message), without and then with the token, so no Ray module is imported before the auth mode is known.

Outside ``TESTED_RAY`` the private calls are not attempted: the loopback start falls back to the environment
variable (it works when Ray is not yet imported, and the node-IP check says so when it did not), and joining a
token cluster from a process that already imported Ray asks for ``RAY_AUTH_MODE=token`` to be exported.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

TESTED_RAY = ((2, 59), (2, 60))  # inclusive (major, minor) range whose internals this module was tested against
LOOPBACK = "127.0.0.1"
_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_GCS_CLUSTER_ID = "/ray.rpc.NodeInfoGcsService/GetClusterId"


class ClusterConnectError(ConnectionError):
    """Joining a Ray cluster failed for a known reason; the message says which and what to do."""


class RayVersionError(RuntimeError):
    """The installed Ray is outside the range whose internals this project was tested against."""


def ray_version() -> tuple[int, int]:
    """(major, minor) of the installed Ray, read from its package metadata (importing nothing)."""
    try:
        text = version("ray")
    except PackageNotFoundError as exc:
        raise RayVersionError("Ray is not installed: install the 'rllib' extra (pip install -e '.[rllib]')") from exc
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError) as exc:
        raise RayVersionError(f"cannot read Ray's version {text!r} (expected MAJOR.MINOR...)") from exc


def internals_tested(found: tuple[int, int] | None = None) -> bool:
    """Whether Ray ``found`` (default: the installed one) lies in ``TESTED_RAY``."""
    found = ray_version() if found is None else found
    return TESTED_RAY[0] <= found <= TESTED_RAY[1]


def check_ray_version(what: str, found: tuple[int, int] | None = None) -> None:
    """Raise RayVersionError naming ``what`` needs Ray's internals when Ray ``found`` is outside ``TESTED_RAY``."""
    found = ray_version() if found is None else found
    if not internals_tested(found):
        lo, hi = (".".join(map(str, v)) for v in TESTED_RAY)
        raise RayVersionError(f"{what} uses Ray internals tested with Ray {lo} to {hi} only; found Ray "
                              f"{found[0]}.{found[1]}: install ray[rllib]>={lo},<{TESTED_RAY[1][0]}."
                              f"{TESTED_RAY[1][1] + 1} (pyproject's 'rllib' extra)")


def auth_token() -> tuple[str | None, str]:
    """The Ray auth token this process would use, and where it comes from (Ray's own order of precedence:
    ``RAY_AUTH_TOKEN``, the file named by ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip(), "the RAY_AUTH_TOKEN environment variable"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        path = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).expanduser()
        where = f"{path} (RAY_AUTH_TOKEN_PATH)"
    else:
        path = Path.home() / ".ray" / "auth_token"
        where = str(path)
    try:
        token = path.read_text().strip()
    except OSError:
        return None, where
    return token or None, where


def check_cluster(address: str, timeout_s: float = 10.0) -> bool:
    """Ask the cluster's GCS at ``address`` for its id, without and then with this machine's auth token.

    Returns whether the cluster wants the token (token authentication on). Raises ClusterConnectError at once with
    the cause and the remedy (nothing listening, no token here, wrong token) instead of Ray's retry loop, which
    ends after about 20 s with only "Failed to connect to Ray cluster". Imports gRPC only, not Ray.
    """
    import grpc

    def ask(metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
        with grpc.insecure_channel(address) as channel:
            call = channel.unary_unary(_GCS_CLUSTER_ID, request_serializer=bytes, response_deserializer=bytes)
            try:
                call(b"", timeout=timeout_s, metadata=metadata)  # GetClusterIdRequest has no fields: b"" is one
            except grpc.RpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK

    status = ask(())
    if status == grpc.StatusCode.OK:
        return False
    if status != grpc.StatusCode.UNAUTHENTICATED:
        raise ClusterConnectError(f"--address {address}: no Ray cluster answers there ({status.name}); start the head "
                                  "with `ray start --head --port=PORT` and pass HEAD_IP:PORT")
    token, where = auth_token()
    howto = ("copy the head node's ~/.ray/auth_token to this machine's ~/.ray/auth_token (mode 600), or point "
             "RAY_AUTH_TOKEN_PATH at a copy; on the head, `ray get-auth-token` prints it")
    if token is None:
        raise ClusterConnectError(f"--address {address}: the cluster requires token authentication and this machine "
                                  f"has no token (looked in {where}); {howto}")
    if ask((("authorization", f"Bearer {token}"),)) != grpc.StatusCode.OK:
        raise ClusterConnectError(f"--address {address}: the cluster rejected the token from {where} (it is not the "
                                  f"token the cluster was started with); {howto}")
    return True


def enable_token_auth() -> None:
    """Token mode for this process and its children. Before Ray is imported the variable is all it takes; after,
    Ray's cached config and token are reloaded (Ray internals, tested range only)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray" not in sys.modules:
        return
    try:
        check_ray_version("switching an already imported Ray to token authentication")
    except RayVersionError as exc:
        raise ClusterConnectError(f"{exc}; or export RAY_AUTH_MODE=token before starting") from None
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def _node_ip_stays_loopback():
    """While Ray starts a local node: keep its node IP 127.0.0.1 (see the module docstring)."""
    if not internals_tested():
        if "ray" not in sys.modules:  # the public route: Ray reads the variable at import
            os.environ.setdefault(_CLUSTER_ENV, "0")
        yield
        return
    import ray._private.ray_constants as ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IPv4 or IPv6 address, IPv4-mapped included) is a loopback address."""
    addr = ipaddress.ip_address(host.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def init_ray(address: str | None = None, num_cpus: int | None = None) -> float:
    """Start (or join) Ray; returns the seconds it took. Does nothing when Ray is already initialised.

    Local (no ``address``): dashboard off, node IP 127.0.0.1, so the GCS, raylet, object manager, workers and the
    runtime-env and dashboard agents bind loopback only; token authentication stays Ray's default (on, with the
    token in ``~/.ray/auth_token``). Joining: ``check_cluster`` first, so a wrong address or token fails in a second
    with its cause; when the cluster wants a token and ``RAY_AUTH_MODE`` is unset, token mode is switched on for
    this process and its children (Ray leaves it unset for an explicit address, so the driver would send none).
    """
    t0 = time.time()
    if address:
        if "ray" in sys.modules:
            import ray

            if ray.is_initialized():
                return time.time() - t0
        if check_cluster(address) and "RAY_AUTH_MODE" not in os.environ:
            enable_token_auth()
        import ray

        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return time.time() - t0
    with _node_ip_stays_loopback():
        import ray

        if ray.is_initialized():
            return time.time() - t0
        ray.init(include_dashboard=False, num_cpus=num_cpus, log_to_driver=False, configure_logging=False)
    node_ip = ray.util.get_node_ip_address()
    if not is_loopback(node_ip):
        ray.shutdown()
        found = ".".join(map(str, ray_version()))
        raise RuntimeError(f"the local Ray {found} started on {node_ip}, not loopback; export {_CLUSTER_ENV}=0 "
                           "before starting (Ray reads it at import) or install a Ray in the tested range "
                           f"{TESTED_RAY[0][0]}.{TESTED_RAY[0][1]} to {TESTED_RAY[1][0]}.{TESTED_RAY[1][1]}")
    return time.time() - t0
