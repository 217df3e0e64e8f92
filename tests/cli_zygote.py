"""A warm interpreter per test worker that forks one child per ``l2exp`` command (a "zygote").

Why: the suite runs ~150 ``l2exp`` commands, and each new interpreter first imports the same modules
(Hydra, pandas, pyarrow, Numba, MLflow, LightGBM, CatBoost, SciPy, scikit-learn, matplotlib): up to ~2 s
of CPU per command on the 2-core CI machine (a small training 5.8-6.3 -> 3.8-5.0 s; the whole suite
496 -> 473 s, measured). Here those imports happen once; each
command is a ``fork`` of the warm interpreter that runs the console script's ``entry()`` -- its own
process with its own argv, environment, working directory, stdout/stderr files, session (so a timeout
kills its whole tree), atexit handlers and exit code, as a user's ``l2exp`` has. Only what an import
does at import time is shared, which is why tests of start-up itself (what a command imports, how long
it takes, the Numba cache's first load) start an interpreter of their own (``subprocess``, as
tests/data/test_warm.py does, or ``run_cli(..., fresh=True)``), and so do commands a test kills or signals.

The zygote stays single-threaded (forking a process with threads copies only the calling one; a lock
another thread held stays locked in the child): it answers requests from one ``select`` loop, reaps
children with ``waitpid(WNOHANG)``, and refuses to fork -- the client then falls back to a fresh
interpreter, said once on stderr -- if an import left a thread running.

Protocol (a Unix socket): the client sends one JSON line ``{args, env, cwd, stdout, stderr}``; the zygote
answers ``<pid>\\n`` when the child is forked and ``<wait status>\\n`` when it has ended.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# What an l2exp command imports on its way (measured with -X importtime over the modes the suite runs).
PRELOAD = (
    "numpy", "pandas", "pyarrow", "pyarrow.parquet", "pyarrow.csv", "pyarrow.compute", "pyarrow.dataset",
    "scipy.stats", "sklearn.metrics", "numba", "hydra", "omegaconf", "hydra._internal.hydra",
    "hydra.core.hydra_config", "mlflow", "mlflow.tracking", "mlflow.models", "mlflow.lightgbm",
    "mlflow.catboost", "lightgbm", "catboost", "matplotlib", "matplotlib.figure", "rich",
    # a local tracking store (SQLAlchemy, ~0.6 s) and the modes most commands run (-X importtime of a pipeline)
    "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
    "sqlalchemy.dialects.sqlite", "mlflow.pyfunc.loaders", "git",
    "l2exp.cli", "l2exp.modes", "l2exp.modes.build", "l2exp.modes.ingest", "l2exp.modes.train",
    "l2exp.modes.backtest", "l2exp.analysis.backtest_page",
)


# Threads that survive a fork by design: jemalloc (pyarrow's allocator) stops its background purging
# thread in its pthread_atfork handler and starts it again when a child needs it.
FORK_SAFE_THREADS = ("jemalloc_bg_thd",)


def _threads() -> int:
    """Threads of this process besides the fork-safe ones (the kernel's list: native threads too)."""
    try:
        names = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")]
    except OSError:
        return threading.active_count()
    return sum(n not in FORK_SAFE_THREADS for n in names)


def serve(path: str, parent: int) -> None:
    import importlib

    for name in PRELOAD:
        # an optional package missing here: the child imports what it needs itself
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(64)
    print(f"ready {_threads()}", flush=True)
    waiting: dict[int, socket.socket] = {}
    # the worker that started it gone (even killed): no zygote left behind. Its pid comes on the command
    # line: read here, os.getppid() could already be init's if the worker died during the imports
    while os.getppid() == parent:
        readable, _, _ = select.select([srv], [], [], 0.02)
        for pid in list(waiting):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                conn = waiting.pop(pid)
                _send(conn, f"{status}\n")
                conn.close()
        if not readable:
            continue
        conn, _ = srv.accept()
        line = _recv_line(conn)
        if not line:
            conn.close()
            continue
        req = json.loads(line)
        if req.get("stop"):
            return
        if _threads() > 1:
            _send(conn, "threads\n")
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            srv.close()
            for other in waiting.values():
                other.close()
            conn.close()
            _child(req)  # never returns: the interpreter ends with the command's exit code
        _send(conn, f"{pid}\n")
        waiting[pid] = conn


def _child(req: dict) -> None:
    os.setsid()
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, name, flags in ((0, os.devnull, os.O_RDONLY), (1, req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        new = os.open(name, flags, 0o644)
        os.dup2(new, fd)
        os.close(new)
    sys.argv = [str(Path(sys.executable).with_name("l2exp")), *req["args"]]
    from l2exp.cli import entry

    entry()
    raise SystemExit(0)


def _send(conn: socket.socket, text: str) -> None:
    with contextlib.suppress(OSError):  # the client gave up (a timeout): nothing to tell
        conn.sendall(text.encode())


def _recv_line(conn: socket.socket, timeout: float | None = None) -> str:
    conn.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode().strip()


class Zygote:
    """The client: starts the zygote on first use, runs commands through it."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="l2exp-zygote-")
        self.path = os.path.join(self._dir, "sock")
        self.proc: subprocess.Popen | None = None
        self.usable = True
        self._runs = itertools.count(1)  # output file names; commands may run from several threads

    def start(self, cwd: Path) -> None:
        # OpenBLAS starts its pool at import unless told one thread (CI sets OMP_NUM_THREADS=1 anyway)
        env = {"OPENBLAS_NUM_THREADS": "1", **os.environ}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.cli_zygote", self.path, str(os.getpid())],
                                     cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("ready"):
            self.usable = False
            print(f"l2exp test zygote did not start ({line!r}): commands run in fresh interpreters",
                  file=sys.stderr)
        elif line.split()[1] != "1":
            self.usable = False
            print(f"l2exp test zygote has {line.split()[1]} threads after its imports: forking it is unsafe, "
                  "commands run in fresh interpreters", file=sys.stderr)

    def run(self, args: list[str], env: dict[str, str], cwd: Path,
            timeout: float) -> subprocess.CompletedProcess | None:
        """The command's CompletedProcess, or None when the zygote cannot run it (run it fresh)."""
        if self.proc is None:
            self.start(cwd)
        if not self.usable:
            return None
        run = next(self._runs)
        out, err = (Path(self._dir) / f"{run}.{ext}" for ext in ("out", "err"))
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            conn.sendall((json.dumps({"args": args, "env": env, "cwd": str(cwd), "stdout": str(out),
                                      "stderr": str(err)}) + "\n").encode())
            first = _recv_line(conn, 60)
            if not first.isdigit():
                self.usable = False
                print(f"l2exp test zygote refused to fork ({first!r}): commands run in fresh interpreters",
                      file=sys.stderr)
                return None
            pid = int(first)
            deadline = time.monotonic() + timeout
            try:
                status = _recv_line(conn, max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                os.killpg(pid, signal.SIGKILL)
                _recv_line(conn, 60)
                raise subprocess.TimeoutExpired(["l2exp", *args], timeout, _read(out), _read(err)) from None
            code = os.waitstatus_to_exitcode(int(status))
            return subprocess.CompletedProcess(["l2exp", *args], code, _read(out), _read(err))
        finally:
            conn.close()
            for f in (out, err):
                f.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(self.path)
                conn.sendall(b'{"stop": true}\n')
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        if self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
