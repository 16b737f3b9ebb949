"""How many threads cpuformer's ops use: the process setting, a per-thread block, and threadpoolctl.

Every op splits its work over ``get_num_threads()`` threads at most, fewer when the work is too small to pay for
them. Calls running at the same time from several Python threads share that budget (one call gets what the others
left, at least its own thread), so a service with many request threads never runs more threads than it allows.
See docs/threads.md for sizing a service.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator

from . import _core

__all__ = ["get_num_threads", "set_num_threads", "num_threads"]


def _checked(n: object, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what}: n must be an int, got {type(n).__name__}")
    limit = _core._max_num_threads()
    if not 1 <= n <= limit:
        raise ValueError(f"{what}: n must be between 1 and {limit} (4 per CPU, at least 64); got {n}")
    return n


def _warn_if_forked(n: int) -> None:
    if n > 1 and _core._forked_serial():
        warnings.warn(
            "this process was forked after cpuformer's threads had started; OpenMP (libgomp) cannot start them "
            "again in a forked child, so ops here run on one thread. Use the 'spawn' or 'forkserver' start method "
            "(multiprocessing.get_context('spawn')) for threaded workers.",
            RuntimeWarning,
            stacklevel=3,
        )


def get_num_threads() -> int:
    """Threads an op called from this thread may use (its ``num_threads`` block if any, else the process setting)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the threads every op may use, process-wide. Default: ``OMP_NUM_THREADS``, else one per CPU."""
    _core.set_num_threads(_checked(n, "set_num_threads"))
    _warn_if_forked(n)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the ops called inside the block, from this thread only, on at most ``n`` threads.

    Other Python threads keep their own setting; blocks nest, and the previous value comes back on exit (also on
    error). Usable as a decorator too.
    """
    n = _checked(n, "num_threads")
    previous = _core._thread_num_threads()
    _core._set_thread_num_threads(n)
    _warn_if_forked(n)
    try:
        yield
    finally:
        _core._set_thread_num_threads(previous)


def _warn_if_env_clamped() -> None:
    """OMP_NUM_THREADS beyond our limit is clamped in C++ (libgomp crashed on 100000); say so once, at import."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > _core._max_num_threads():
        warnings.warn(
            f"OMP_NUM_THREADS={value} is more than cpuformer allows ({_core._max_num_threads()}: 4 per CPU, at least "
            f"64); using {_core._process_num_threads()} threads",
            RuntimeWarning,
            stacklevel=2,
        )


def _register_threadpoolctl() -> None:
    """Let threadpoolctl see and limit our threads (threadpool_info(), threadpool_limits(1)) when it is installed."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if not hasattr(threadpoolctl, "register"):  # threadpoolctl < 3.3 has no controller registry
        return
    if any(c.internal_api == "cpuformer" for c in getattr(threadpoolctl, "_ALL_CONTROLLERS", [])):
        return
    threadpoolctl.register(_controller_class(threadpoolctl))


def _controller_class(threadpoolctl):
    class CpuformerController(threadpoolctl.LibController):
        """threadpoolctl's view of cpuformer: an OpenMP library whose thread count is our process setting."""

        user_api = "openmp"
        internal_api = "cpuformer"
        filename_prefixes = ("_core",)
        # Other packages have a _core module too: only ours exports these.
        check_symbols = ("cpuformer_get_num_threads", "cpuformer_set_num_threads")

        def get_num_threads(self):
            return self.dynlib.cpuformer_get_num_threads()

        def set_num_threads(self, num_threads):
            self.dynlib.cpuformer_set_num_threads(int(num_threads))

        def get_version(self):
            return _core.__version__

        def set_additional_attributes(self):
            config = _core._config()
            self.openmp_runtime = config["openmp"]
            self.isa = config["isa"]

    return CpuformerController
