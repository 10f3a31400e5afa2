"""One Ray task per item, on the local Ray or a cluster: the primitive behind seeds and sweeps that scale out.

``map_on_ray(fn, items, address)`` returns ``[fn(item) for item in items]``, in input order, computed by one Ray
task per item. Ray is started or joined by ``ray_cluster.init_ray`` exactly as for RLlib training: a local Ray on
loopback without ``address``; with it, the cluster check, token authentication and their one-line errors.

The contract a caller must keep:

- **What travels.** ``fn``, every item and every result are pickled (Ray's cloudpickle). ``fn`` may be a plain
  function, a ``functools.partial`` or a closure; what it captures travels with it, so capture paths, names,
  configs and seeds, never loaded profiles, traces, environments or models (they are large and some hold handles
  that do not pickle). A function is pickled by reference to its module, which every worker must import: the project
  installed identically on every node (Ray also puts the driver's working and script folders on its workers'
  ``sys.path``, which is how a checkout's code reaches a local Ray's workers); a function defined elsewhere (a
  test module, a notebook) must be registered by value first: ``ray.cloudpickle.register_pickle_by_value(module)``.
  ``check_picklable`` runs before Ray starts and names the function or item that does not pickle.
- **How inputs are rebuilt on a worker.** A worker is another process, on a cluster another machine: it rebuilds
  the profile and traces from paths, as RLlib's EnvRunners do (``rllib.make_env``). ``WorkerInputs`` is that rule
  once: the profile path, the trace source (a folder, or ``"embedded"`` regenerated with ``trace_seed``) and the
  exact ``family/name`` list of traces to use; ``setup()`` returns the ``Setup`` the driver had, ``load_traces()``
  the listed traces, and it fails naming the count found and where when a node sees other data. Every node must see
  the same files at the same paths (README "Scaling out"). A worker reuses what it loaded for later tasks.
- **Determinism.** ``fn(item)`` must depend on its arguments only (seed everything from the item): then the result
  equals the local serial loop's, whichever node ran it. Workers do not inherit the driver's later changes to
  environment variables or globals. Thread counts differ: Ray sets ``OMP_NUM_THREADS`` to the task's ``num_cpus``
  and reuses worker processes (measured on Ray 2.60: torch in a task ran 1 thread, the driver 2), and a
  multi-threaded torch reduction may round differently; work that trains networks should call
  ``torch.set_num_threads(k)`` inside ``fn`` and in the serial loop it is compared with.
- **Failure.** An exception in ``fn`` raises ``TaskFailed`` naming the item (``describe(item)``) and its index,
  with the worker's exception as cause; the other tasks are cancelled. A worker process that dies is retried by
  Ray (``max_retries``), so ``fn`` must be safe to run twice (write files atomically, or not at all).
- **Resources.** Each task asks for ``num_cpus`` CPUs (default 1), so a local Ray on N cores runs N at a time.
  Ray stays up after the call (later calls reuse it); ``ray.shutdown()`` ends it, as does the driver's exit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .ray_cluster import init_ray

T = TypeVar("T")
R = TypeVar("R")


class TaskFailed(RuntimeError):
    """One item's task failed; ``item`` and ``index`` say which, ``__cause__`` holds the worker's exception."""

    def __init__(self, message: str, item: Any, index: int) -> None:
        super().__init__(message)
        self.item = item
        self.index = index


@dataclass(frozen=True)
class WorkerInputs:
    """What a worker needs to rebuild the driver's profile and traces: paths and names, never loaded data.

    ``traces_source`` is what ``bandwidth_traces.default_traces`` reloads (a folder, or ``"embedded"``: regenerated with
    ``trace_seed``); ``trace_names`` the exact ``family/name`` list to keep (None: every trace found).
    """

    profile: str
    traces_source: str
    trace_seed: int = 0
    trace_names: tuple[str, ...] | None = None

    @classmethod
    def of(cls, profile: Any, traces_source: str, trace_seed: int = 0, traces: Sequence[Any] | None = None
           ) -> WorkerInputs:
        """From the driver's side: the profile's path, the trace source and (optionally) the traces it uses."""
        names = None if traces is None else tuple(f"{t.family}/{t.name}" for t in traces)
        return cls(str(profile), str(traces_source), int(trace_seed), names)

    def load_profile(self):
        return _load_profile(self.profile)

    def load_traces(self) -> list[Any]:
        """The listed traces (all when ``trace_names`` is None), in the order the source lists them."""
        found, origin = _load_traces(self.traces_source, self.trace_seed)
        if self.trace_names is None:
            return list(found)
        wanted = set(self.trace_names)
        chosen = [t for t in found if f"{t.family}/{t.name}" in wanted]
        if len(chosen) != len(wanted):
            raise ValueError(f"worker found {len(chosen)} of {len(wanted)} traces in {origin} (every node must see "
                             "the same trace files at the same path, or pass --traces)")
        return chosen

    def setup(self, config: Any = None):
        """The ``agents.evaluation.Setup`` over the profile and the listed traces (with ``config`` if given)."""
        from agents.evaluation import Setup

        args = (self.load_profile(), self.load_traces())
        return Setup.create(*args) if config is None else Setup.create(*args, config)


@functools.lru_cache(maxsize=4)
def _load_profile(path: str):
    from perception import FrameProfile

    return FrameProfile.load(path)


@functools.lru_cache(maxsize=4)
def _load_traces(source: str, seed: int):
    from bandwidth_traces import default_traces

    traces, origin = default_traces(source, seed=seed)
    return tuple(traces), origin


def check_picklable(fn: Callable[..., Any], items: Sequence[Any], describe: Callable[[Any], str] = repr) -> None:
    """Raise TypeError naming ``fn`` or the first item that Ray's cloudpickle cannot pickle."""
    from ray import cloudpickle

    def fails(obj: Any) -> str | None:
        try:
            cloudpickle.dumps(obj)
        except Exception as exc:  # noqa: BLE001 - pickling raises many types; all mean "cannot travel"
            return f"{type(exc).__name__}: {exc}"
        return None

    if (why := fails(fn)) is not None:
        raise TypeError(f"map_on_ray: the function {fn!r} cannot be sent to Ray workers ({why}); capture paths, "
                        "names and seeds, not loaded objects")
    for i, item in enumerate(items):
        if (why := fails(item)) is not None:
            raise TypeError(f"map_on_ray: item #{i} {describe(item)} cannot be sent to Ray workers ({why})")


def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def map_on_ray(fn: Callable[[T], R], items: Sequence[T], address: str | None = None, *, num_cpus: float = 1.0,
               max_retries: int = 1, describe: Callable[[T], str] = repr) -> list[R]:
    """``[fn(item) for item in items]``, one Ray task per item, on the local Ray or the cluster at ``address``.

    Results come in input order. The first task to fail cancels the rest and raises ``TaskFailed`` naming its item
    (``describe(item)``). Nothing starts Ray for an empty ``items``. See the module docstring for the contract.
    """
    if not callable(fn):
        raise TypeError(f"map_on_ray: fn must be callable, got {type(fn).__name__}")
    items = list(items)
    if num_cpus <= 0:
        raise ValueError(f"map_on_ray: num_cpus must be > 0, got {num_cpus}")
    if not items:
        return []
    check_picklable(fn, items, describe)
    init_ray(address)
    import ray

    remote = ray.remote(_apply).options(num_cpus=num_cpus, max_retries=max_retries)
    fn_ref = ray.put(fn)
    index = {ref: i for i, ref in enumerate(remote.remote(fn_ref, item) for item in items)}
    results: list[Any] = [None] * len(items)
    pending = list(index)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            i = index[ref]
            try:
                results[i] = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - any task failure is reported with its item
                for other in pending:
                    ray.cancel(other)
                cause = getattr(exc, "cause", None) or exc
                raise TaskFailed(f"map_on_ray: the task for item #{i} {describe(items[i])} failed: "
                                 f"{type(cause).__name__}: {cause}", items[i], i) from cause
    return results
