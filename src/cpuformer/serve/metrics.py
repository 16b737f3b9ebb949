"""The server's Prometheus metrics, written in the text exposition format (version 0.0.4) by hand: three small
metric types are all we need, and the serve extra stays at fastapi + uvicorn.

Updated from the event loop and from the batching threads, so every update takes the metric's lock."""
from __future__ import annotations

import math
import threading
from typing import Iterable, Sequence

__all__ = ["Counter", "Gauge", "Histogram", "Metrics"]

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help_text, tuple(label_names)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str] | None) -> LabelValues:
        labels = labels or {}
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()):
        super().__init__(name, help_text, label_names)
        self._values: dict[LabelValues, float] = {} if label_names else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float], label_names: Sequence[str] = ()):
        super().__init__(name, help_text, label_names)
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self._series: dict[LabelValues, list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            series = self._series.setdefault(key, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
            series[-2] += value
            series[-1] += 1

    def sum_and_count(self, **labels: str) -> tuple[float, float]:
        with self._lock:
            series = self._series.get(self._key(labels))
            return (series[-2], series[-1]) if series else (0.0, 0.0)

    def lines(self) -> list[str]:
        out = self.header()
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for key, series in items:
            for bound, count in zip(self.buckets, series):
                le = 'le="' + _number(bound) + '"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {_number(count)}")
            out.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(series[-2])}")
            out.append(f"{self.name}_count{_labels(self.label_names, key)} {_number(series[-1])}")
        return out


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768)


class Metrics:
    """Every metric the server exports (names prefixed cpuformer_)."""

    def __init__(self):
        self.requests = Counter("cpuformer_requests_total", "HTTP requests answered, by endpoint and status code",
                                ("endpoint", "status"))
        self.request_latency = Histogram("cpuformer_request_latency_seconds",
                                         "Time from request start to the last byte of the response",
                                         _LATENCY_BUCKETS, ("endpoint",))
        self.queue_depth = Gauge("cpuformer_queue_depth", "Requests waiting for a batch (embeddings) or a cache "
                                 "row (generation)", ("engine",))
        self.batch_size = Histogram("cpuformer_batch_size", "Sequences per model call: an encoder batch, or the "
                                    "running sequences of one decode step", _SIZE_BUCKETS, ("engine",))
        self.batch_tokens = Histogram("cpuformer_batch_tokens", "Tokens per encoder batch", _TOKEN_BUCKETS,
                                      ("engine",))
        self.tokens = Counter("cpuformer_tokens_total", "Tokens processed: embedded, prompt (prefilled) or "
                              "generated (rate() gives tokens/s)", ("kind",))
        self.tokens_per_second = Gauge("cpuformer_tokens_per_second", "Tokens per second of the last model call",
                                       ("engine",))
        self.running_sequences = Gauge("cpuformer_running_sequences", "Sequences in the running decode batch")
        self.cancelled = Counter("cpuformer_generations_cancelled_total",
                                 "Generations stopped because their client went away")
        self.rejected = Counter("cpuformer_requests_rejected_total", "Requests refused because the queue was full",
                                ("engine",))

    def all(self) -> list[_Metric]:
        return [self.requests, self.request_latency, self.queue_depth, self.batch_size, self.batch_tokens,
                self.tokens, self.tokens_per_second, self.running_sequences, self.cancelled, self.rejected]

    def render(self) -> str:
        return "\n".join(line for metric in self.all() for line in metric.lines()) + "\n"
