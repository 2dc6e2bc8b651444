"""Backends: where independent tasks run (generation's planned episodes, the bench's training runs
and evaluation episodes). The caller is the only writer of their results.

* ``local`` (:class:`LocalBackend`) runs tasks in this process (``workers=1``) or in a
  ``spawn`` process pool (one torch thread per worker; workers die with the parent);
* ``ray`` (:class:`RayBackend`) runs each task as a ``ray.remote`` task (on the cluster at
  ``$RAY_ADDRESS``, or a local ``ray.init(num_cpus=workers)``, unless Ray is already initialized;
  one CPU and one torch thread per task). Tasks read and write the caller's paths: on a cluster of
  several machines those must be on a filesystem every node sees.

A backend's :meth:`~Backend.map` runs any module-level function over argument tuples and yields
the results as they finish; :meth:`~Backend.results` is generation's use of it.
:data:`BACKENDS` maps each name to its class (``choices=BACKENDS`` lists the names). A backend's
``cores`` is what the orchestrator divides its throughput by: worker processes, or the CPUs of
the Ray cluster; ``remote`` says whether tasks may run outside this process's machine. Importing
this module is light (no torch, no env).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from esper_agents.generation.collector import EpisodeRecord
    from esper_agents.generation.planning import EpisodeTask
    from esper_env.settings import EnvSettings


class Backend(Protocol):
    """What the run loops need of a backend: built with ``workers``, it streams results."""

    cores: int
    #: Tasks may run in other processes on other machines (their logs and progress bars are not shown).
    remote: bool

    def map(
        self, fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], gpus: float = 0.0
    ) -> Iterator[Any]:
        """``fn(*task)`` for every task, in the order they finish; ``gpus`` per task where the
        backend schedules GPUs (Ray)."""
        ...

    def results(self, tasks: Sequence[EpisodeTask], settings: EnvSettings) -> Iterator[EpisodeRecord]:
        """The episodes of ``tasks``, in the order they finish."""
        ...

    def close(self, abort: bool = False) -> None:
        """Release the workers; ``abort`` does not wait for running episodes."""
        ...


class _EnvCache:
    """A few envs per process, one per settings (a generation's settings differ by config only):
    building an env loads its dataset."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.envs: dict[EnvSettings, Any] = {}

    def get(self, settings: EnvSettings) -> Any:
        """``CompactActions(settings.make())``, built once."""
        from esper_env.wrappers import CompactActions

        if settings not in self.envs:
            if len(self.envs) >= self.size:
                old = next(iter(self.envs))
                self.envs.pop(old).close()
            self.envs[settings] = CompactActions(settings.make())
        return self.envs[settings]


_CACHE = _EnvCache()


def run_task(task: EpisodeTask, settings: EnvSettings) -> EpisodeRecord:
    """Collect one planned episode of a generation whose env is ``settings`` (in the task's config),
    in whatever process this runs."""
    from esper_agents.generation.collector import collect_episode
    from esper_agents.policies import EpsilonGreedy, get_policy

    env = _CACHE.get(settings.replace(config=task.config_id))
    behavior = EpsilonGreedy(get_policy(task.policy_id), epsilon=task.epsilon)
    return collect_episode(
        env, behavior, seed=task.seed, episode_id=task.episode_id, policy_id=task.policy_id,
        config_id=task.config_id, replicate=task.replicate, round=task.round,
    )  # fmt: skip


def _init_worker(parent_pid: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    if sys.platform.startswith("linux"):
        import ctypes

        # PR_SET_PDEATHSIG: a worker must not outlive a killed parent (it would compute for nothing).
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)
    import torch

    torch.set_num_threads(1)


class LocalBackend:
    """This process (one worker) or a spawn process pool kept for the whole run (all rounds)."""

    remote = False

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.cores = workers
        self.pool: Any = None

    def map(
        self, fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], gpus: float = 0.0
    ) -> Iterator[Any]:
        from esper_agents.common.pool import run_unordered

        if self.workers <= 1:
            yield from run_unordered(fn, tasks, 1)
            return
        finished = False
        try:
            # A couple of tasks per worker in flight: results stream to the caller as they finish.
            yield from run_unordered(fn, tasks, self.workers, pool=self._pool())
            finished = True
        finally:
            if not finished:
                self.close(abort=True)

    def results(self, tasks: Sequence[EpisodeTask], settings: EnvSettings) -> Iterator[EpisodeRecord]:
        return self.map(run_task, [(t, settings) for t in tasks])

    def _pool(self) -> Any:
        if self.pool is None:
            from esper_agents.common.pool import spawn_pool

            self.pool = spawn_pool(self.workers, initializer=_init_worker, initargs=(os.getpid(),))
        return self.pool

    def close(self, abort: bool = False) -> None:
        if self.pool is None:
            return
        pool, self.pool = self.pool, None
        if not abort:
            pool.shutdown(wait=True)
            return
        # Interrupted (an error, Ctrl-C, the consumer stopped): do not wait for running episodes.
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()


class RayBackend:
    """Each task a ``ray.remote`` task. Unless Ray is already initialized, this joins the
    cluster at ``$RAY_ADDRESS`` or starts a local instance with ``num_cpus=workers``; it shuts Ray
    down at the end only if it initialized it."""

    remote = True

    def __init__(self, workers: int) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("the ray backend needs Ray: pip install 'esper[ray]'") from None
        self.workers = workers
        self.started = False
        if not ray.is_initialized():
            runtime_env = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
            if os.environ.get("RAY_ADDRESS"):  # join that cluster; its size is its own
                ray.init(log_to_driver=False, runtime_env=runtime_env)
            else:
                ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False,
                         runtime_env=runtime_env)  # fmt: skip
            self.started = True
        self.cores = max(int(ray.cluster_resources().get("CPU", workers)), 1)

    def map(
        self, fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], gpus: float = 0.0
    ) -> Iterator[Any]:
        return _ray_map(fn, tasks, self.workers, gpus)

    def results(self, tasks: Sequence[EpisodeTask], settings: EnvSettings) -> Iterator[EpisodeRecord]:
        return self.map(run_task, [(t, settings) for t in tasks])

    def close(self, abort: bool = False) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def _ray_map(
    fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], workers: int, gpus: float
) -> Iterator[Any]:
    import ray

    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=2)(_one_thread)
    queue = list(tasks)
    pending: list[Any] = []
    limit = 2 * max(int(ray.cluster_resources().get("CPU", workers)), 1)
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                pending.append(remote.remote(fn, *queue.pop(0)))
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:  # interrupted: do not leave tasks running for nobody
            ray.cancel(ref, force=True)


def _one_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with one torch thread (a Ray task's share of a core, as a local pool worker's)."""
    import torch

    torch.set_num_threads(1)
    return fn(*args)


#: Backend name -> class, in the order ``--backend`` lists them.
BACKENDS: Mapping[str, type[Backend]] = {"local": LocalBackend, "ray": RayBackend}
