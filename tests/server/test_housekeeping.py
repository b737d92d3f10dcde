"""uvicorn's housekeeping in `serve`: it wakes once a tick (not ten times a second), and a stop ends it at once."""

from __future__ import annotations

import asyncio
import threading

import uvicorn

from edpilot.server import launch


class _Live:
    on_failure = None  # the server sets this: its stop, called from the batch loop's thread on a failure


def test_housekeeping_sleeps_between_ticks_and_a_stop_from_another_thread_wakes_it(monkeypatch):
    monkeypatch.setattr(launch, "TICK_S", 30.0)
    server = launch._Server(uvicorn.Config(app=None), live=_Live(), on_ready=print)
    ticks: list[int] = []

    async def on_tick(counter: int) -> bool:
        ticks.append(counter)
        return server.should_exit

    server.on_tick = on_tick  # type: ignore[method-assign]

    async def housekeeping() -> float:
        loop = asyncio.get_running_loop()
        threading.Timer(0.5, server._stop).start()  # as the batch loop's failure stops the server
        start_s = loop.time()
        await server.main_loop()
        return loop.time() - start_s

    took_s = asyncio.run(housekeeping())
    assert 0.5 <= took_s < 10.0  # woken by the stop, not by the 30 s tick
    assert ticks == [0, 10]  # the start, then the stop; the Date header is renewed on each (uvicorn: every 10th)
