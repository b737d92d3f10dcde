"""A gateway that shares its host's CPU with the model server it fronts gives way to it while it only relays.

On a host whose cores the model's threads fill (llama.cpp on CPU), every wake-up of the gateway, one per upstream
chunk, preempts a model thread, and the next token comes that much later: the gateway's CPU time comes out of the
model's almost millisecond for millisecond (docs/serving.md). So while one request streams alone and has had its
first text, the event loop's thread runs at idle priority (Linux SCHED_IDLE): it relays on cores the model leaves
free, and catches up at the latest when the model's request ends. A request that arrives, or waits for its first
token, puts it back at its own priority at once, so time to first token is not delayed.

Leaving SCHED_IDLE needs root, CAP_SYS_NICE or RLIMIT_NICE 20 (`ulimit -e 20`); `CpuYield.start` tries it on a
thread of its own first and, where it is not allowed (or not Linux), yields nothing and says why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import threading
import time
from collections.abc import Callable

from edpilot.server.worker import Pending

log = logging.getLogger(__name__)

Yield = Callable[[bool], None]  # True: the loop's thread at idle priority; False: back at its own
BEAT_S = 0.1  # while it gives way, the loop stamps a heartbeat this often (and the watchdog wakes as often)
MAX_STARVED_S = 0.3  # a beat this late: other work starves the loop; back at its own priority until it catches up


class CpuYield:
    """Counts the requests waiting for their first token and those streaming; `give_way(True)` while one streams
    and none waits, `give_way(False)` otherwise (each only when it changes). One: the upstream then works for that
    stream alone and pauses when it ends, so the relay catches up at once; with several in flight it need never
    pause, and the relay would lag (measured: docs/serving.md).

    While it gives way, a watchdog thread at the loop's own priority puts it back there at once when input comes on
    the server's sockets (`sockets`: the listening ones and every connection's — a new request, or a client going
    away), and when the loop's heartbeat, stamped every `BEAT_S`, is `MAX_STARVED_S` late: idle priority lets any
    other work on the host starve the loop, not only the model it fronts. The loop gives way again at its next beat,
    if the counts still say so."""

    def __init__(self, give_way: Yield | None = None, sockets: Callable[[], list[int]] | None = None) -> None:
        self._give_way = give_way
        self.sockets = sockets  # the server's descriptors, asked on the loop (set by the server once it exists)
        self._fds: list[int] = []  # the sockets' descriptors when it last gave way
        self._lock = threading.Lock()
        self._waiting: set[int] = set()
        self._streaming: set[int] = set()
        self._yielding = self._held = False  # held: back at its own priority until the loop's next beat
        self._starved_times = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._beat_s = 0.0
        self._beat: asyncio.Handle | None = None
        self._watching = threading.Event()  # set while it gives way: the watchdog checks the beats
        self._stopped = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self) -> None:
        """On the event loop's thread: from now on, yield that thread (where the system allows it)."""
        if self._give_way is None:
            why = cannot_yield()
            if why is not None:
                log.info("not giving the CPU to the upstream on this host while relaying: %s", why)
                return
            self._give_way = thread_priority(threading.get_native_id())
            log.info(
                "relaying at idle CPU priority while one request streams alone (the upstream is on this host: its "
                "threads keep the cores); --no-yield-cpu turns it off"
            )
        self._loop = asyncio.get_running_loop()
        self._watchdog = threading.Thread(target=self._watch, name="edpilot-relay-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        """Back at the thread's own priority, for good."""
        with self._lock:
            self._waiting.clear()
            self._streaming.clear()
            self._update()
            self._give_way = None
        self._stopped.set()
        self._watching.set()
        if self._watchdog is not None:
            self._watchdog.join()

    def track(self, pending: Pending) -> Callable[[], None]:
        """A request was admitted: it waits for its first token, and counts until its future is done. Returns what
        to call once its client has that token (a stream's first text written: given way before, the write would
        wait for a free core; an answer sent whole: the engine's first token)."""
        key = id(pending)
        with self._lock:
            self._waiting.add(key)
            self._update()
        pending.future.add_done_callback(lambda _: self._done(key))
        return lambda: self._first_token(key)

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
        """Give way or not, as the counts (and the watchdog) say; under the lock."""
        yielding = len(self._streaming) == 1 and not self._waiting and not self._held
        if yielding != self._yielding and self._give_way is not None:
            self._give_way(yielding)
        if yielding and not self._yielding and self._loop is not None:  # a new chain of beats, the old one ended
            self._fds = self.sockets() if self.sockets is not None else []  # on the loop: what it serves now
            self._beat_s = time.monotonic()
            if self._beat is not None:
                self._beat.cancel()
            self._beat = self._loop.call_soon_threadsafe(self._on_beat)
            self._watching.set()
        self._yielding = yielding

    def _on_beat(self) -> None:
        """On the loop, every `BEAT_S` while it gives way (or is held): it got the CPU just now."""
        with self._lock:
            self._beat_s = time.monotonic()
            if self._held:  # caught up: give way again (a new chain of beats) if the counts still say so
                self._held = False
                self._update()
            elif self._yielding and self._loop is not None:
                self._beat = self._loop.call_later(BEAT_S, self._on_beat)
            if not self._yielding:
                self._watching.clear()

    def _watch(self) -> None:
        """The watchdog's thread: while the loop gives way, input on its sockets or a beat `MAX_STARVED_S` late puts
        it back."""
        while self._watching.wait() and not self._stopped.is_set():
            with self._lock:
                fds = self._fds if self._yielding else []  # held: the loop serves the input meanwhile
            if fds:
                has_input = _readable(fds, BEAT_S)
            else:
                self._stopped.wait(BEAT_S)
                has_input = False
            with self._lock:
                late_s = time.monotonic() - self._beat_s
                if not self._yielding or not (has_input or late_s > MAX_STARVED_S):
                    continue
                self._held = True
                self._update()
                if not has_input:
                    self._starved_times += 1
                    if self._starved_times in (1, 10, 100, 1000):  # a host that stays busy: not a line each time
                        log.info(
                            "other work on this host starved the relay (a beat %.2f s late; %d times so far): back at "
                            "its own priority until it catches up",
                            late_s,
                            self._starved_times,
                        )


def _readable(fds: list[int], timeout_s: float) -> bool:
    """Whether input (or a hang-up) comes on any of `fds` within `timeout_s`."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(timeout_s * 1000))


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
