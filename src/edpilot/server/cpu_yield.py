"""A gateway that shares its host's CPU with the model server it fronts gives way to it while it only relays.

On a host whose cores the model's threads fill (llama.cpp on CPU), every wake-up of the gateway, one per upstream
chunk, preempts a model thread, and the next token comes that much later: the gateway's CPU time comes out of the
model's almost millisecond for millisecond (docs/serving.md). So while every running request has had its first
token, the event loop's thread runs at idle priority (Linux SCHED_IDLE): it relays on cores the model leaves free,
and catches up at the latest when the model's request ends. A request that arrives, or waits for its first token,
puts it back at its own priority at once, so time to first token is not delayed.

Leaving SCHED_IDLE needs root, CAP_SYS_NICE or RLIMIT_NICE 20 (`ulimit -e 20`); `CpuYield.start` tries it on a
thread of its own first and, where it is not allowed (or not Linux), yields nothing and says why.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from edpilot.server.worker import Pending

log = logging.getLogger(__name__)

Yield = Callable[[bool], None]  # True: the loop's thread at idle priority; False: back at its own


class CpuYield:
    """Counts the requests waiting for their first token and those streaming; `give_way(True)` while some stream
    and none waits, `give_way(False)` otherwise (each only when it changes)."""

    def __init__(self, give_way: Yield | None = None) -> None:
        self._give_way = give_way
        self._lock = threading.Lock()
        self._waiting: set[int] = set()
        self._streaming: set[int] = set()
        self._yielding = False

    def start(self) -> None:
        """On the event loop's thread: from now on, yield that thread (where the system allows it)."""
        if self._give_way is None:
            why = cannot_yield()
            if why is not None:
                log.info("not giving the CPU to the upstream on this host while relaying: %s", why)
                return
            self._give_way = thread_priority(threading.get_native_id())
        log.info(
            "relaying at idle CPU priority while every request has its first token (the upstream is on this host: "
            "its threads keep the cores); --no-yield-cpu turns it off"
        )

    def stop(self) -> None:
        """Back at the thread's own priority, for good."""
        with self._lock:
            self._waiting.clear()
            self._streaming.clear()
            self._update()
        self._give_way = None

    def track(self, pending: Pending) -> None:
        """A request was admitted: it waits for its first token until `pending` stamps it, and counts until done."""
        key = id(pending)
        with self._lock:
            self._waiting.add(key)
            self._update()
        pending.on_first_token = lambda: self._first_token(key)
        pending.future.add_done_callback(lambda _: self._done(key))

    def _first_token(self, key: int) -> None:
        with self._lock:
            if key in self._waiting:
                self._waiting.discard(key)
                self._streaming.add(key)
                self._update()

    def _done(self, key: int) -> None:
        with self._lock:
            self._waiting.discard(key)
            self._streaming.discard(key)
            self._update()

    def _update(self) -> None:
        yielding = bool(self._streaming) and not self._waiting
        if yielding != self._yielding and self._give_way is not None:
            self._give_way(yielding)
        self._yielding = yielding


def cannot_yield() -> str | None:
    """Why this process cannot go to idle priority and back (None: it can), tried on a thread of its own."""
    if not hasattr(os, "SCHED_IDLE"):
        return "idle CPU priority (SCHED_IDLE) is Linux-only"
    why: list[str] = []

    def attempt() -> None:
        give_way = thread_priority(threading.get_native_id())
        try:
            give_way(True)
            give_way(False)
        except OSError as exc:
            why.append(
                f"leaving idle priority is not allowed ({exc.strerror}): it needs root, CAP_SYS_NICE or "
                "RLIMIT_NICE 20 (ulimit -e 20)"
            )

    probe = threading.Thread(target=attempt, name="edpilot-priority-probe")
    probe.start()
    probe.join()
    return why[0] if why else None


def thread_priority(native_id: int) -> Yield:
    """Switches thread `native_id` between idle priority and the policy it has now."""
    policy, param = os.sched_getscheduler(native_id), os.sched_getparam(native_id)
    idle = os.sched_param(0)

    def give_way(yielding: bool) -> None:
        if yielding:
            os.sched_setscheduler(native_id, os.SCHED_IDLE, idle)
        else:
            os.sched_setscheduler(native_id, policy, param)

    return give_way
