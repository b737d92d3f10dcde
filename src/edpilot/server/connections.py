"""Connection limits for uvicorn's HTTP protocols: a deadline to receive each request and a cap on connections.

uvicorn on its own times out only idle keep-alive connections, and any byte restarts that timer: a client that
trickles its headers (slowloris) holds its connection, and its file descriptor, for ever. Here every connection
that waits for (the rest of) a request has `read_timeout_s` from when it started waiting to deliver the whole
request, headers and body; a request fully received is served however long its batch takes. At most
`max_connections` are open: one more evicts the connection that has waited longest without delivering a
request (or, when every connection is busy with a request, is closed itself), so slow clients cannot lock
real ones out, and the server keeps descriptors for its own files (sysfs, the run log).

The limits sit on uvicorn's httptools protocol (its parser is C: a streamed chunk costs a fraction of h11's),
or on its h11 protocol where httptools is not installed; both keep the request in flight as `cycle`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is missing: serve with h11
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from edpilot.clock import WallClock

log = logging.getLogger(__name__)

SHED_LOG_INTERVAL_S = 60.0  # at most one line a minute about connections closed for being slow or too many


class ConnectionLimits:
    """What the protocols of one server share: the limits, the connections waiting for a request (oldest first)."""

    def __init__(self, *, max_connections: int, read_timeout_s: float) -> None:
        self.max_connections, self.read_timeout_s = max_connections, read_timeout_s
        self.waiting: dict[_Limited, None] = {}
        self.closed_slow = 0
        self.closed_over_cap = 0
        self._clock = WallClock()
        self._logged_s: float | None = None

    def note(self) -> None:
        """Log the closed connections, once per SHED_LOG_INTERVAL_S (a flood writes a line a minute, not one each)."""
        now_s = self._clock.now_s()
        if self._logged_s is not None and now_s - self._logged_s < SHED_LOG_INTERVAL_S:
            return
        self._logged_s = now_s
        log.warning(
            "closed %d connections that did not send a whole request within %g s and %d over the cap of %d "
            "(so far; next report in %g s at most)",
            self.closed_slow,
            self.read_timeout_s,
            self.closed_over_cap,
            self.max_connections,
            SHED_LOG_INTERVAL_S,
        )


class _Limited:
    """`ConnectionLimits` over one of uvicorn's protocols (mixed in before it; `limited_protocol` sets `limits`)."""

    limits: ConnectionLimits
    connections: set[Any]
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]  # the protocol it is mixed into has it
        self._track()
        if len(self.connections) > self.limits.max_connections:
            oldest = next(iter(self.limits.waiting), self)
            self.limits.closed_over_cap += 1
            self.limits.note()
            oldest._close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)  # type: ignore[misc]

    def _received(self) -> bool:
        """Whether a whole request is in and its answer not yet sent."""
        cycle = self.cycle
        return cycle is not None and not cycle.more_body and not cycle.response_complete

    def _track(self) -> None:
        if self._received() or self.transport.is_closing():
            self._stop_waiting()
        elif self not in self.limits.waiting:
            self.limits.waiting[self] = None
            self._deadline = self.loop.call_later(self.limits.read_timeout_s, self._too_slow)

    def _stop_waiting(self) -> None:
        self.limits.waiting.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self in self.limits.waiting:
            self.limits.closed_slow += 1
            self.limits.note()
            self._close()

    def _close(self) -> None:
        self._stop_waiting()
        # Counted out now: its connection_lost comes a loop turn later, and a request read before that would meet
        # uvicorn's own cap (limit_concurrency) and get a 503.
        self.connections.discard(self)
        if not self.transport.is_closing():
            self.transport.close()


def limited_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn (`Config(http=...)`), bound to `limits`: httptools where it is
    installed, else h11."""
    base: type[Any] = H11Protocol if HttpToolsProtocol is None else HttpToolsProtocol
    return type(f"Limited{base.__name__}", (_Limited, base), {"limits": limits})
