"""Where partition-parallel work runs (``conf/compute/*.yaml``): this process, threads of this process, a
local process pool, or tasks on a Ray cluster.

Each backend has ``map(fn, items)``: ``fn(item)`` for every item, results in the items' order (and
``imap``, the same as an iterator yielding each result as soon as it and those before it are done),
the first exception re-raised in the caller (a :class:`~l2exp.errors.UserError` keeps its
message, where and fix). ``fn`` must be a module-level function and the items picklable: they travel
to other processes. The work itself never depends on the backend -- the same tasks, the same outputs
(``tests/features/test_partitioned.py`` compares digests).

Written here rather than taken from joblib: joblib's process backend (loky) starts workers that
re-import everything per pool and cannot target a Ray cluster without its own plug-in; three small
classes over ``concurrent.futures`` and ``ray`` keep the choice one config key.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# what a pool worker imports once, before it takes tasks: the feature kernels (compiled code loaded
# from Numba's cache), pyarrow and pandas -- ~1.5 s that every task would otherwise wait for
PRELOAD = ["l2exp.features.partitioned", "l2exp.data.ingest"]


class Serial:
    """Every task in this process, one after another (the reference the parallel runs must equal)."""

    workers = 1

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return list(self.imap(fn, items))

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return (fn(x) for x in items)

    def describe(self) -> str:
        return "serial (this process)"


class _Executor:
    """``map`` / ``imap`` over a ``concurrent.futures`` executor of at most ``workers`` (the local backends)."""

    workers: int

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return list(self.imap(fn, items))

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        items = list(items)
        if not items:
            return
        with self._executor(min(self.workers, len(items))) as pool:
            yield from pool.map(fn, items)

    def _executor(self, workers: int) -> Executor:
        raise NotImplementedError


class LocalThreads(_Executor):
    """``workers`` threads of this process. The partition tasks spend their time in code that releases
    the GIL -- the Numba kernels (``nogil``), Arrow's Parquet reads and IPC writes, NumPy's copies and
    ufuncs, hashing -- so threads run them side by side without a process pool's start-up, imports,
    pickling and per-process memory (4 x 500 k rows on 2 cores, this VM: 2.45-3.6 s on 2 threads, 3.2 s
    on 2 processes, 3.3-4.7 s serial; memory bandwidth and page-cache writes are shared, so not 2x).

    Args:
        workers: threads; 0 = the CPUs this process may use.
    """

    def __init__(self, workers: int = 0) -> None:
        self.workers = int(workers) or len(os.sched_getaffinity(0))

    def _executor(self, workers: int) -> Executor:
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="l2exp")

    def describe(self) -> str:
        return f"threads ({self.workers})"


class LocalPool(_Executor):
    """A pool of ``workers`` processes on this machine.

    Args:
        workers: processes; 0 = the CPUs this process may use.
        start_method: ``forkserver`` (default: workers fork from a clean server that imported
            :data:`PRELOAD` once -- fast to start, and no fork of this process's threads), or ``spawn``.
    """

    def __init__(self, workers: int = 2, start_method: str = "forkserver") -> None:
        self.workers = int(workers) or len(os.sched_getaffinity(0))
        self.start_method = start_method

    def _executor(self, workers: int) -> Executor:
        ctx = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            ctx.set_forkserver_preload(PRELOAD)
            short_socket_dir()
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=die_with_parent,
                                   initargs=(os.getpid(),))

    def describe(self) -> str:
        return f"local pool ({self.workers} processes)"


# the forkserver's socket: <temp dir>/pymp-XXXXXXXX/listener-XXXXXXXX, and a Unix socket path holds at most
# 107 bytes on Linux (108 with its NUL)
_SOCKET_SUFFIX = len("/pymp-XXXXXXXX/listener-XXXXXXXX")
_SUN_PATH_MAX = 107
_SHORT_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def short_socket_dir() -> None:
    """Put multiprocessing's private temp folder (the forkserver's listening socket) where its path fits.

    Why: with a long ``TMPDIR`` (a deep CI or pytest-xdist temp folder, a home directory on a network
    share) the forkserver cannot bind its socket -- ``OSError: AF_UNIX path too long`` and the ingest
    ended in a traceback (found by a CI run, temp folder of 81 bytes). CPython 3.13 falls back to a
    short system folder itself (``multiprocessing.util._get_base_temp_dir``); this does the same on
    3.11: while multiprocessing creates its folder (once per process, removed at exit), ``tempfile``
    answers the first writable of /tmp, /var/tmp, /dev/shm. Only that socket folder moves: l2exp's own
    spill files still go to ``TMPDIR``."""
    import tempfile
    from multiprocessing import process, util

    base = tempfile.gettempdir()
    if process.current_process()._config.get("tempdir") is not None:  # created already: nothing to choose
        return
    if len(os.fsencode(base)) + _SOCKET_SUFFIX <= _SUN_PATH_MAX:
        return
    short = next((d for d in _SHORT_DIRS if os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK)), None)
    if short is None:
        return  # the bind error will say so
    saved = tempfile.tempdir
    tempfile.tempdir = short
    try:
        util.get_temp_dir()
    finally:
        tempfile.tempdir = saved


def die_with_parent(owner: int) -> None:
    """A pool worker ends when the process that owns the pool (``owner``) dies, however it dies.

    Why: a ``kill -9`` of the ingest left its forkserver, resource tracker and workers running with parent
    PID 1 (~660 MB, holding their tasks' spill). Nothing else ends them: a worker is the forkserver's child
    and holds the write end of the forkserver's "client alive" pipe and of the task queue, so neither the
    forkserver nor the worker ever reads EOF. Each worker watches the owner with a pidfd (readable when that
    process exits) on a daemon thread and leaves with it; the forkserver then reads EOF and leaves, and the
    resource tracker after them. Without pidfds (not Linux) nothing is watched: the pool's own shutdown."""
    import select
    import threading

    try:
        fd = os.pidfd_open(owner)
    except (AttributeError, OSError):  # no pidfd, or the owner is gone already
        if not _alive(owner):
            os._exit(1)
        return

    def watch() -> None:
        select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="l2exp-owner-watch").start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: alive, another user's
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class RayCluster:
    """One Ray task per item on a Ray cluster.

    Args:
        address: the cluster (``host:port``, ``auto``), or ``local`` to start one in this process.
        num_cpus: CPUs each task reserves; the cluster's CPUs / this = tasks at once.
        env: environment variables for the workers (e.g. the recordings path).

    Every node needs this project installed (same version) and the store's path readable (a shared
    file system or the same mount): a task reads its partition and writes its output there itself.
    """

    def __init__(self, address: str = "auto", num_cpus: float = 1.0, env: dict[str, str] | None = None) -> None:
        self.address = address
        self.num_cpus = float(num_cpus)
        self.env = {k: str(v) for k, v in dict(env or {}).items() if v is not None}
        self.workers = 0

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return list(self.imap(fn, items))

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        from l2exp.errors import UserError

        try:
            import ray
        except ImportError as exc:
            raise UserError(f"compute=ray needs Ray ({exc})", where="compute",
                            fix="pip install '.[ray]', or compute=local") from None
        items = list(items)
        if not ray.is_initialized():
            runtime_env = {"env_vars": self.env} if self.env else None
            try:
                if self.address == "local":
                    ray.init(runtime_env=runtime_env, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=self.address, runtime_env=runtime_env, log_to_driver=False)
            except ConnectionError as exc:
                raise UserError(f"no Ray cluster at {self.address!r}: {exc}", where="compute.address",
                                fix="Start one (ray start --head) and set RAY_ADDRESS, or compute=local") from None
        self.workers = int(ray.cluster_resources().get("CPU", 0) // self.num_cpus)
        task = ray.remote(num_cpus=self.num_cpus, max_retries=0)(fn)
        refs = [task.remote(x) for x in items]
        for ref in refs:
            try:
                yield ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                raise exc.as_instanceof_cause() from None

    def describe(self) -> str:
        return f"ray ({self.address}, {self.num_cpus:g} CPU per task)"

