"""Small helpers shared by the tests: random float32 arrays, running a function on several Python threads, a
temporary cpuformer thread count, and hypothesis (optional: its tests skip when it is not installed)."""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pytest

import cpuformer


def rand(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    """Standard normal float32 values of the given shape (times `scale`)."""
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def run_in_threads(fn: Callable[..., Any], args: Sequence[tuple]) -> list:
    """Runs fn(*args[i]) on its own Python thread for every i, all started before any is joined, and returns
    the results in order. An exception raised on any thread is re-raised here (the first one, by index)."""
    results: list = [None] * len(args)
    errors: list = [None] * len(args)

    def work(i: int) -> None:
        try:
            results[i] = fn(*args[i])
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread below
            errors[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        if e is not None:
            raise e
    return results


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """cpuformer.set_num_threads(n) inside the block; the previous count is restored even on error."""
    previous = cpuformer.get_num_threads()
    cpuformer.set_num_threads(n)
    try:
        yield
    finally:
        cpuformer.set_num_threads(previous)


# ---- hypothesis, optional --------------------------------------------------------------------------------------
# Property tests import given / settings / st / hnp / HealthCheck from here. Without hypothesis installed, each
# @given test is collected as one test skipped with the reason, and the rest of its module still runs.
try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:
    HYPOTHESIS_MISSING = "hypothesis is not installed (pip install hypothesis): property-based test {} skipped"

    class _Stands:
        """Stands for strategies and settings values at decoration time: every attribute and call gives itself."""

        def __getattr__(self, name: str) -> "_Stands":
            return self

        def __call__(self, *args, **kwargs) -> "_Stands":
            return self

    st = hnp = HealthCheck = _Stands()

    def settings(*args, **kwargs):
        return lambda fn: fn

    def given(*args, **kwargs):
        def decorate(fn):
            def skipped():
                pytest.skip(HYPOTHESIS_MISSING.format(f"{fn.__module__}.{fn.__qualname__}"))

            skipped.__name__, skipped.__qualname__, skipped.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
            skipped.__module__ = fn.__module__
            return skipped

        return decorate


def real_sentences(minimum: int = 1000) -> list[str]:
    """Over `minimum` real English sentences, offline and deterministic: the Python reference manual's topics
    that ship with the standard library (pydoc_data), split into sentences of 6..40 mostly-alphabetic words.
    Used for accuracy checks of quantized models; never for tuning them."""
    import re

    from pydoc_data.topics import topics

    text = re.sub(r"\s+", " ", "\n".join(topics[k] for k in sorted(topics)))
    sentences = []
    for s in dict.fromkeys(re.split(r"(?<=[.!?])\s+", text)):
        words = s.split()
        if 6 <= len(words) <= 40 and s[0].isupper() and sum(c.isalpha() or c == " " for c in s) > 0.9 * len(s):
            sentences.append(s)
    if len(sentences) < minimum:
        pytest.skip(f"only {len(sentences)} sentences in this Python's pydoc topics; need {minimum}")
    return sentences
