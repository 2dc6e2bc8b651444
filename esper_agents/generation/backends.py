"""Generation backends: where the planned episodes run. This process is the only writer of the pack.

* ``local`` (:class:`LocalBackend`) runs episodes in this process (``workers=1``) or in a
  ``spawn`` process pool (one torch thread per worker; workers die with the parent);
* ``ray`` (:class:`RayBackend`) runs each episode as a ``ray.remote`` task (on the cluster at
  ``$RAY_ADDRESS``, or a local ``ray.init(num_cpus=workers)``, unless Ray is already initialized).

:data:`BACKENDS` maps each name to its class (``choices=BACKENDS`` lists the names). A backend's
``cores`` is what the orchestrator divides its throughput by: worker processes, or the CPUs of
the Ray cluster. Importing this module is light (no torch, no env).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from esper_agents.generation.collector import EpisodeRecord
    from esper_agents.generation.planning import EpisodeTask
    from esper_env.settings import EnvSettings


class Backend(Protocol):
    """What the run loop needs of a backend: built with ``workers``, it streams records."""

    cores: int

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

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.cores = workers
        self.pool: Any = None

    def results(self, tasks: Sequence[EpisodeTask], settings: EnvSettings) -> Iterator[EpisodeRecord]:
        from esper_agents.common.pool import run_unordered

        if self.workers <= 1:
            yield from run_unordered(run_task, [(t, settings) for t in tasks], 1)
            return
        finished = False
        try:
            # A couple of tasks per worker in flight: results stream to the writer as they finish.
            yield from run_unordered(
                run_task, [(t, settings) for t in tasks], self.workers, pool=self._pool()
            )
            finished = True
        finally:
            if not finished:
                self.close(abort=True)

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
    """Each episode a ``ray.remote`` task. Unless Ray is already initialized, this joins the
    cluster at ``$RAY_ADDRESS`` or starts a local instance with ``num_cpus=workers``; it shuts Ray
    down at the end only if it initialized it."""

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

    def results(self, tasks: Sequence[EpisodeTask], settings: EnvSettings) -> Iterator[EpisodeRecord]:
        return _ray_results(tasks, settings, self.workers)

    def close(self, abort: bool = False) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def _ray_results(
    tasks: Sequence[EpisodeTask], settings: EnvSettings, workers: int
) -> Iterator[EpisodeRecord]:
    import ray

    remote = ray.remote(num_cpus=1, max_retries=2)(run_task)
    queue = list(tasks)
    pending: list[Any] = []
    limit = 2 * max(int(ray.cluster_resources().get("CPU", workers)), 1)
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                pending.append(remote.remote(queue.pop(0), settings))
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:  # interrupted: do not leave episodes running for nobody
            ray.cancel(ref, force=True)


#: Backend name -> class, in the order ``--backend`` lists them.
BACKENDS: Mapping[str, type[Backend]] = {"local": LocalBackend, "ray": RayBackend}
