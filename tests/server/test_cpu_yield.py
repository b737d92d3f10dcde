"""A gateway in front of a server on this host relays at idle CPU priority while one request streams alone."""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import sys
import threading
import time

import pytest

from edpilot.server import cpu_yield
from edpilot.server.cpu_yield import CpuYield, cannot_yield
from edpilot.server.worker import Answer, Pending
from edpilot.workload import Request

SCHED_IDLE = 5  # Linux's policy number, as /proc/PID/stat shows it
PR_CAPBSET_DROP, CAP_SYS_NICE = 24, 23  # <linux/prctl.h>, <linux/capability.h>


def test_it_gives_way_only_while_one_request_streams_and_none_waits_for_its_first_token():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        calls: list[bool] = []
        cpu = CpuYield(calls.append)
        a, b, c = (Pending(Request(i, 0.0, "p", 1, 4), loop.create_future()) for i in range(3))
        a_has_token = cpu.track(a)  # waiting: nothing to change
        assert calls == []
        a_has_token()
        assert calls == [True]  # a streams alone, none waits
        b_has_token = cpu.track(b)
        assert calls == [True, False]  # b waits for its first token: at its own priority at once
        b_has_token()
        assert calls == [True, False]  # two stream: the upstream need never pause, so no giving way
        a.finish(Answer("x", 4, None, 0.1, None))
        await asyncio.sleep(0)  # the future's callbacks run on the loop
        assert calls == [True, False, True]  # b streams alone
        cpu.track(c)
        c.future.cancel()  # its client went away before any token
        await asyncio.sleep(0)
        assert calls == [True, False, True, False, True]
        b.finish(Answer("y", 4, None, 0.1, None))
        await asyncio.sleep(0)
        assert calls == [True, False, True, False, True, False]  # nothing streams: back for the next arrival
        cpu.track(Pending(Request(3, 0.0, "p", 1, 4), loop.create_future()))()
        cpu.stop()
        assert calls[-2:] == [True, False]  # stopping leaves the thread at its own priority

    asyncio.run(scenario())


def test_a_starved_loop_is_put_back_at_its_own_priority_and_gives_way_again_once_it_has_caught_up(monkeypatch):
    monkeypatch.setattr(cpu_yield, "MAX_STARVED_S", 0.5)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        calls: list[bool] = []
        cpu = CpuYield(calls.append)
        cpu.start()
        a = Pending(Request(0, 0.0, "p", 1, 4), loop.create_future())
        cpu.track(a)()
        await asyncio.sleep(0.3)  # the loop runs: its beats come, nothing changes
        assert calls == [True]
        time.sleep(1.5)  # the loop gets no CPU, as under other work at idle priority: the watchdog sees it
        assert calls == [True, False]
        await asyncio.sleep(0.2)  # it runs again: its next beat gives way again
        assert calls == [True, False, True]
        cpu.stop()
        assert calls == [True, False, True, False]

    asyncio.run(scenario())


def test_input_on_a_socket_puts_a_giving_way_loop_back_at_once(monkeypatch):
    monkeypatch.setattr(cpu_yield, "MAX_STARVED_S", 30.0)  # only the input can do it here
    listening, client = socket.socketpair()

    async def scenario() -> tuple[list[bool], float]:
        loop = asyncio.get_running_loop()
        calls: list[bool] = []
        back_s: list[float] = []

        def give_way(yielding: bool) -> None:
            calls.append(yielding)
            if not yielding:
                back_s.append(time.monotonic())

        cpu = CpuYield(give_way, sockets=lambda: [listening.fileno()])
        cpu.start()
        cpu.track(Pending(Request(0, 0.0, "p", 1, 4), loop.create_future()))()
        sent_s = time.monotonic() + 0.3
        threading.Timer(0.3, client.send, args=(b"GET /",)).start()  # a request comes while the loop gets no CPU
        time.sleep(1.5)
        cpu.stop()
        return calls, back_s[0] - sent_s

    calls, after_s = asyncio.run(scenario())
    assert calls[:2] == [True, False]
    assert after_s < 1.0  # the watchdog, not the loop (blocked for 1.5 s), put it back
    listening.close()
    client.close()


def _policy(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[38])  # field 41: the scheduling policy


def _without_cap_sys_nice() -> None:
    """In the child before exec: drop CAP_SYS_NICE from the bounding set, so not even root may leave idle priority."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_SYS_NICE)")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scheduling policies are Linux's")
@pytest.mark.parametrize(
    "flag, unprivileged", [("--yield-cpu", False), ("--no-yield-cpu", False), ("--yield-cpu", True)]
)
def test_a_gateway_relays_at_idle_priority_mid_stream_and_returns_after(serve, flag, unprivileged):
    if unprivileged and os.geteuid() != 0:
        pytest.skip("dropping a capability needs root; unprivileged already, the first case covers it")
    upstream = serve("--device", "sim", "--engine", "sim", "--sim-speed", "1", "--batch", "2")
    gateway = serve(
        "--device",
        "cpu",
        "--engine",
        f"openai:{upstream.url}",
        "--batch",
        "2",
        flag,
        preexec_fn=_without_cap_sys_nice if unprivileged else None,
    )
    pid = gateway.proc.pid  # the event loop runs on the main thread
    client = gateway.client()
    model = client.models.list().data[0].id
    during = [
        _policy(pid) for _ in client.completions.create(model=model, prompt="hi there", max_tokens=48, stream=True)
    ]
    own = os.sched_getscheduler(0)  # the gateway started with this process's policy
    if flag == "--no-yield-cpu":
        assert set(during) == {own}
        assert "idle CPU priority" not in gateway.log
    elif unprivileged or cannot_yield() is not None:  # it cannot come back: says why once, relays at its own
        assert set(during) == {own}
        assert "leaving idle priority is not allowed" in gateway.log
    else:
        assert during.count(SCHED_IDLE) >= len(during) // 2  # from the first text written to the end
        assert "relaying at idle CPU priority" in gateway.log
    assert _policy(pid) == own  # the answer is done: back at its own priority
    gateway.stop()
