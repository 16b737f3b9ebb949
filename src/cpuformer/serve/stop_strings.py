"""Stop sequences on streamed text (OpenAI `stop`): the text ends before the first stop string, which is never
returned. While a piece's end could still be the start of a stop string, that end is held back, so a stream never
sends text that a later piece turns into a stop."""
from __future__ import annotations

from typing import Sequence

__all__ = ["StopStrings"]


class StopStrings:
    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that is safe to send now. After a stop string, `stopped` is True and nothing more comes."""
        if self.stopped:
            return ""
        text = self._held + piece
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped, self._held = True, ""
            return text[:min(hits)]
        keep = 0  # the longest end of `text` that begins some stop string
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(text)), keep, -1):
                if text.endswith(stop[:k]):
                    keep = k
                    break
        self._held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def flush(self) -> str:
        """What is held back once the text has ended without a stop."""
        held, self._held = ("" if self.stopped else self._held), ""
        return held
