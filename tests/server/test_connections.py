"""Connection limits on both of uvicorn's protocols: httptools (the default) and h11 (where httptools is missing).

A real uvicorn on a loopback port, real sockets: a client that trickles its headers is cut at the read deadline,
one more connection than the cap evicts the oldest that has not delivered a request, and a request fully
received is answered however long it takes.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

uvicorn = pytest.importorskip("uvicorn")

from edpilot.server import connections  # noqa: E402
from edpilot.server.connections import ConnectionLimits, limited_protocol  # noqa: E402

GUARD_S = 30.0  # against a hang, not a measurement
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def app(scope, receive, send) -> None:  # noqa: ANN001 - a bare ASGI app
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)  # longer than the read deadline: a received request is not cut
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


Started = tuple[str, int, ConnectionLimits, type]


@pytest.fixture(params=["httptools", "h11"])
def start(request, monkeypatch) -> Iterator[Callable[[float], Started]]:
    """Starts uvicorn under limits of 3 connections and a read deadline (s); stops it after the test."""
    if request.param == "httptools":
        pytest.importorskip("httptools")
    else:
        monkeypatch.setattr(connections, "HttpToolsProtocol", None)  # as if httptools were not installed
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def run(read_timeout_s: float) -> Started:
        limits = ConnectionLimits(max_connections=3, read_timeout_s=read_timeout_s)
        protocol = limited_protocol(limits)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, http=protocol, log_level="critical", lifespan="off")
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        servers.append((srv, thread))
        deadline = time.monotonic() + GUARD_S
        while not (srv.started and srv.servers):
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        host, port = srv.servers[0].sockets[0].getsockname()[:2]
        return host, port, limits, protocol

    yield run
    for srv, thread in servers:
        srv.should_exit = True
        thread.join(GUARD_S)


def _connect(host: str, port: int) -> socket.socket:
    return socket.create_connection((host, port), timeout=GUARD_S)


def _get(host: str, port: int, path: str = "/") -> bytes:
    with _connect(host, port) as sock:
        sock.sendall(REQUEST.replace(b"/ ", path.encode() + b" ", 1))
        return sock.recv(1024)


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_the_protocol_is_httptools_where_installed_else_h11(start, request) -> None:
    *_, protocol = start(0.5)
    wanted = "HttpToolsProtocol" if request.node.callspec.params["start"] == "httptools" else "H11Protocol"
    assert [c.__name__ for c in protocol.__mro__][2] == wanted


def test_a_client_that_trickles_its_headers_is_cut_at_the_read_deadline(start) -> None:
    host, port, limits, _ = start(0.5)
    with _connect(host, port) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert _closed(slow)  # recv returns once the server closes it (the guard is GUARD_S)
    assert limits.closed_slow == 1 and limits.closed_over_cap == 0
    assert _get(host, port, "/slow").startswith(b"HTTP/1.1 200")  # received in time: answered after 1 s


def test_one_connection_over_the_cap_evicts_the_oldest_waiting_one(start) -> None:
    host, port, limits, _ = start(GUARD_S)  # only the cap cuts connections here
    slow = [_connect(host, port) for _ in range(3)]
    try:
        for sock in slow:
            sock.sendall(b"GET / HTTP/1.1\r\n")
            time.sleep(0.05)  # so that the first is the oldest
        assert _get(host, port).startswith(b"HTTP/1.1 200")  # the fourth connection is served
        assert _closed(slow[0])
        assert limits.closed_over_cap == 1 and limits.closed_slow == 0
    finally:
        for sock in slow:
            sock.close()
