"""Clocks always given back: real `edpilot apply --hold` processes, real signals, fake Jetson trees, many tries."""

from __future__ import annotations

import os
import pty
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.hardware.fake_jetson import ORIN_LEVELS_HZ, build_tree

ORIGINAL = {"min_freq": str(ORIN_LEVELS_HZ[0]), "max_freq": str(ORIN_LEVELS_HZ[-1]), "governor": "nvhost_podgov"}
PARALLEL = 8


def wait_for(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


HOLD = ["-m", "edpilot", "apply", "--device", "jetson", "--freq", "522.75", "--hold"]
ON_TERMINAL = (  # a new session takes its terminal as controlling terminal (TIOCSCTTY), then becomes edpilot
    "import fcntl, os, sys, termios; fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); "
    "fcntl.ioctl(fd, termios.TIOCSCTTY, int(os.geteuid() == 0)); [os.dup2(fd, n) for n in (0, 1, 2)]; "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def controlling_tty(pid):
    """tty_nr of a process (0: none)."""
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[4])


def start_holds(tmp_path, n, *, terminal=None, **popen):
    """n fake trees, each with an `apply --hold` pinned on it (on `terminal`, a tty path, if given)."""
    runs = []
    for i in range(n):
        fake = build_tree(tmp_path / f"root{i}").start()
        env = {**os.environ, "EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(tmp_path / f"state{i}")}
        cmd = [sys.executable, *HOLD] if terminal is None else [sys.executable, "-c", ON_TERMINAL, terminal, *HOLD]
        proc = subprocess.Popen(cmd, env=env, start_new_session=terminal is not None, **popen)
        runs.append((fake, env, proc))
    for fake, _, proc in runs:
        assert wait_for(lambda f=fake: f.read("cur_freq") == "522750000"), f"not pinned (exit {proc.poll()})"
    return runs


def restored(fake, env):
    state = env["EDPILOT_STATE_DIR"]
    return {n: fake.read(n) for n in ORIGINAL} == ORIGINAL and not any(p.endswith(".json") for p in os.listdir(state))


PATTERNS = {
    "TERM,TERM": (signal.SIGTERM, signal.SIGTERM),
    "HUP,HUP": (signal.SIGHUP, signal.SIGHUP),
    "INT,INT": (signal.SIGINT, signal.SIGINT),
    "TERM,HUP": (signal.SIGTERM, signal.SIGHUP),
}


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_two_signals_0_to_50_ms_apart_always_restore(tmp_path, pattern):
    rng = random.Random(pattern)
    runs = start_holds(tmp_path, PARALLEL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first, second = PATTERNS[pattern]
    try:
        for _, _, proc in runs:
            proc.send_signal(first)
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(second)
        for _, _, proc in runs:
            proc.wait(timeout=20)
        results = [restored(fake, env) for fake, env, _ in runs]
        stderr = [proc.stderr.read().decode() for _, _, proc in runs]
        assert results == [True] * PARALLEL, stderr
        assert not any("Traceback" in text for text in stderr), stderr
    finally:
        for fake, _, proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            fake.stop()


def test_terminal_hangup_restores(tmp_path):
    """The hold runs on its own terminal; closing the terminal's master side hangs it up (SIGHUP, dead stderr)."""
    runs, masters = [], []
    for n in range(6):
        master, slave = pty.openpty()
        runs += start_holds(tmp_path / f"t{n}", 1, terminal=os.ttyname(slave), stdin=subprocess.DEVNULL)
        os.close(slave)
        masters.append(master)
    try:
        assert all(controlling_tty(proc.pid) != 0 for _, _, proc in runs)
        for master in masters:
            os.close(master)
        for _, _, proc in runs:
            assert proc.wait(timeout=20) == 128 + signal.SIGHUP
        assert [restored(fake, env) for fake, env, _ in runs] == [True] * len(runs)
    finally:
        for fake, _, proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            fake.stop()
