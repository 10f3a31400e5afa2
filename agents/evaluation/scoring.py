"""The tuning score (a policy's mean accuracy on the tuning episodes), in this process or on worker processes.

``TrainingScorer(setup, seed, episodes, workers)`` is the ``score`` every grid search of ``agents.policies.tuning``
calls: ``scorer(policy)`` scores one policy and ``scorer.score_many(policies)`` several (the grid searches ask
for a whole batch of grid points at once). The tuning set is one vector env over the training traces x
``episodes`` episodes per trace and a fixed episode set from ``seed + 1`` (``make_episodes``), re-pinned for
every policy, so a policy's score depends on nothing but the policy.

With ``workers=1`` (``training_scorer``'s default) that env lives in this process and policies are scored one
after the other, as before there were workers. With ``workers=n > 1`` a pool of ``n`` worker processes is
started at the first score: each builds its own env and episode set by the same rule from the same
``(setup, seed, episodes)``, so it holds identical episodes, and a batch is split among them, the scores coming
back in the batch's order: bit for bit the scores of the in-process path (the kernel is deterministic,
a policy is pickled with its every parameter, a float comes back exactly). Policies sent to a worker are
plain parameters (a tuned policy before any ``attach``); a worker never imports torch.

Processes. Workers are started with ``spawn`` (a fresh interpreter: the parent may have torch and its OpenMP
threads started, and forking a process with threads running can deadlock the child), run with one BLAS thread
(``single_blas_thread``'s limit, for the whole process), ignore SIGINT (Ctrl-C reaches the parent, which then
shuts the pool down) and exit by themselves if the parent dies. The pool is shut down by ``close()`` (also on
leaving a ``with`` block, so on any exception or KeyboardInterrupt); a scorer with workers must be closed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agents.policies import Policy

from .rollout import evaluate, make_episodes

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from .suite import Setup


def default_workers() -> int:
    """Worker processes the tuning uses unless told: two where the machine has two cores or more, else one."""
    return min(2, os.cpu_count() or 1)


class TrainingScorer:
    """Mean accuracy of a policy on fixed episodes over the training traces x training scenes (module docstring)."""

    def __init__(self, setup: Setup, seed: int, episodes: int, workers: int = 1):
        if workers < 1:
            raise ValueError(f"TrainingScorer: workers must be >= 1, got {workers}")
        self.setup, self.seed, self.episodes, self.workers = setup, seed, episodes, workers
        self._pool: ProcessPoolExecutor | None = None
        self._env: Any = None
        self._episode_set: Any = None
        if workers == 1:
            self._env = setup.factory("train")(len(setup.train_traces) * episodes, setup.train_traces)
            self._episode_set = make_episodes(self._env, episodes, seed + 1)

    def __call__(self, pol: Policy) -> float:
        if self.workers > 1:
            return self.score_many([pol])[0]
        return evaluate(pol, lambda n, t: self._env, self.setup.train_traces, self.episodes,
                        episode_set=self._episode_set).metrics["all"]["accuracy"]

    def score_many(self, policies: Sequence[Policy]) -> list[float]:
        """One score per policy, in order: on the pool with workers, else one after the other here."""
        if self.workers == 1:
            return [self(p) for p in policies]
        if self._pool is None:
            self._pool = self._start_pool()
        # one policy per task: a score takes ~0.3 s, far above a task's overhead, and the load stays balanced
        return list(self._pool.map(_score_in_worker, policies))

    def _start_pool(self) -> ProcessPoolExecutor:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(self.setup, self.seed, self.episodes, os.getpid()))

    def close(self) -> None:
        """Shut the pool down (scores not started are cancelled; running ones finish, < 1 s); no-op without one."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TrainingScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- worker side ------------------------------------------------------------------------------------------------

_WORKER: TrainingScorer | None = None
_BLAS_LIMIT: Any = None  # kept alive: the one-BLAS-thread limit lasts as long as this object


def _init_worker(setup: Setup, seed: int, episodes: int, parent: int) -> None:
    """A worker's start: one BLAS thread, Ctrl-C left to the parent, exit with the parent, its own tuning env."""
    global _WORKER, _BLAS_LIMIT
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    _WORKER = TrainingScorer(setup, seed, episodes, workers=1)
    # after the env is built: building it loads a second BLAS (SciPy's), which a limit set before would miss
    _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")


def _exit_with_parent(parent: int) -> None:
    """Poll the parent; if it is gone (killed without shutting the pool down), leave at once."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _score_in_worker(pol: Policy) -> float:
    return _WORKER(pol)
