"""Progress bars (tqdm) on stderr: texts or batches done, rate and ETA. Shown on a terminal only, unless asked.

A log file or a pipe gets no bar by default (tqdm redraws with carriage returns, which a log keeps as one long
line); `enabled=True` shows it anyway, `enabled=False` never.
"""
from __future__ import annotations

import sys
from typing import Optional

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(total: Optional[int], *, desc: str, unit: str, enabled: Optional[bool] = None,
                 initial: int = 0) -> tqdm:
    """A tqdm bar on stderr. enabled None: only when stderr is a terminal. total None: a count and a rate."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
