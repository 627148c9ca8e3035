"""What one ``session.Session`` allows (its limits and timers) and the errors for asking more.

Import these names from ``session``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Limits and timers of one session; every duration is in seconds.

    ``window``: most submit_sm/data_sm/deliver_sm of ours awaiting a response at once.
    ``tps``: most of those sent per second (None: unlimited); ``tps_burst``: how many
    may go back to back after a quiet spell. The default 1 spaces them exactly 1/tps
    apart, which SMSCs counting per second accept; raise it when an event loop waking
    late would otherwise cost throughput.
    ``enquire_link_interval``: send enquire_link after this long with nothing received.
    ``response_timeout``: a request of ours (enquire_link too) unanswered this long
    times out. ``bind_timeout``: how long a client waits for its bind_resp, and a server
    (constructed with ``now``) for a bind. ``unbind_timeout``: how long we wait for an
    unbind_resp.
    """

    window: int = 10
    tps: float | None = None
    tps_burst: int = 1
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    bind_timeout: float = 10.0
    unbind_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.window < 1 or self.tps_burst < 1:
            raise ValueError("window and tps_burst must be at least 1")
        if self.tps is not None and not self.tps > 0:
            raise ValueError("tps must be positive or None")
        timers = (self.enquire_link_interval, self.response_timeout, self.bind_timeout)
        if not all(seconds > 0 for seconds in (*timers, self.unbind_timeout)):
            raise ValueError("every interval and timeout must be positive")


class SessionError(Exception):
    """The application asked for something the session cannot do in its role or state."""


class WindowFull(SessionError):
    """send_request with the window full; wait for a response (``next_send_at`` is inf)."""


class Throttled(SessionError):
    """send_request before the send rate or ``pause_until`` allows; retry at ``retry_at``."""

    def __init__(self, retry_at: float) -> None:
        super().__init__(f"the next request may go at {retry_at:.6f}")
        self.retry_at = retry_at
