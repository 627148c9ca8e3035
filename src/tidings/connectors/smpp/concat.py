"""Putting the parts of a long incoming message together (MO to us, submits to our server).

Each part comes with a token (what to answer once the whole is stored); parts are
kept by a key naming the message (sender, recipient, reference) until all have come.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tidings.connectors.smpp.coding import ConcatInfo

K = TypeVar("K")
T = TypeVar("T")


@dataclass
class _Message(Generic[T]):
    total: int
    parts: dict[int, tuple[str, T]] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)

    def whole(self) -> tuple[str, list[T]]:
        ordered = [self.parts[n] for n in sorted(self.parts)]
        return "".join(text for text, _ in ordered), [token for _, token in ordered]


class PartAssembler(Generic[K, T]):
    def __init__(self) -> None:
        self._messages: dict[K, _Message[T]] = {}

    def add(self, key: K, concat: ConcatInfo, text: str,
            token: T) -> tuple[str, list[T]] | None:
        """The whole text and every part's token once the last part is in; else None."""
        message = self._messages.setdefault(key, _Message(concat.total))
        message.parts[concat.seqnum] = (text, token)
        if len(message.parts) < message.total:
            return None
        del self._messages[key]
        return message.whole()

    def take(self, key: K) -> tuple[str, list[T]] | None:
        """Take out one message still missing parts: what came of it, or None."""
        message = self._messages.pop(key, None)
        return None if message is None else message.whole()

    def stale(self, older_than_seconds: float) -> list[tuple[K, str, list[T]]]:
        """Take out the messages still missing parts after ``older_than_seconds``."""
        now = time.monotonic()
        keys = [k for k, m in self._messages.items() if now - m.since > older_than_seconds]
        return [(key, *self._messages.pop(key).whole()) for key in keys]
