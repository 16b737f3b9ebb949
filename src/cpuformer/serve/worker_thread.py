"""The one background thread shape both serving engines use: a condition to wake it, start, and a stop that lets
it finish what is queued before it ends."""
from __future__ import annotations

import threading


class WorkerThread:
    """Subclasses implement `_run()`, which returns once `_stopping` is set and its queue is empty."""

    def __init__(self, name: str):
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        """Finish every queued request, then end the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
