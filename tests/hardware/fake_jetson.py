"""A faithful fake of a Jetson's sysfs tree (real file names, units and labels) and a fake kernel thread.

The kernel thread plays devfreq (cur_freq follows min/max), the BPMP's memory clock (debugfs
`bpmp/debug/clk/emc`: with mrq_rate_locked 0 the kernel's DVFS sets `rate`; with 1 a written rate holds if it is
in the EMC table and not above max_rate, else it is silently dropped, as the BPMP does) and the INA3221 (power
files change over time along a known waveform), writing every file atomically as sysfs reads are atomic.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ORIN_LEVELS_HZ = [
    114750000,
    216750000,
    318750000,
    420750000,
    522750000,
    624750000,
    726750000,
    828750000,
    930750000,
    1032750000,
    1134750000,
    1236750000,
    1300500000,
]

# AGX Orin's EMC table, as `bpmp/debug/emc/possible_rates` lists it (kHz); the clock's files hold Hz.
AGX_ORIN_EMC_KHZ = [204000, 665600, 2133000, 3199000]
EMC_DVFS_HZ = 2133000000  # where the kernel's DVFS holds the memory clock while it is not locked
EMC_SOURCES = ("possible_rates", "available_rates", "tables", "none")

# (chip, [(label, mV, mA), ...]) as on an AGX Orin: no input rail; NC channels are not connected.
AGX_ORIN_RAILS = [
    ("1-0040", [("VDD_GPU_SOC", 5000, 1600), ("VDD_CPU_CV", 5000, 600), ("VIN_SYS_5V0", 5000, 900)]),
    ("1-0041", [("NC", 0, 0), ("VDDQ_VDD2_1V8AO", 5000, 300), ("NC", 0, 0)]),
]
ORIN_NX_RAILS = [("1-0040", [("VDD_IN", 5000, 2400), ("VDD_CPU_GPU_CV", 5000, 900), ("VDD_SOC", 5000, 500)])]


def put(path: Path, value: object) -> None:
    """Write a sysfs-like file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


@dataclass
class FakeJetson:
    """Paths of a fake tree and the knobs its kernel thread uses."""

    root: Path
    devfreq: Path
    hwmons: list[Path]
    gpu_rail_current: Path  # curr file of the first rail, the one the waveform drives
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    waveform: object = None  # callable t_s -> mA on the driven rail, or None for constant
    t0: float = 0.0  # monotonic time the waveform starts at
    emc: Path | None = None  # sys/kernel/debug/bpmp/debug/clk/emc, if the tree has a memory clock
    emc_dvfs_hz: int = EMC_DVFS_HZ
    emc_levels_hz: tuple[int, ...] = tuple(khz * 1000 for khz in AGX_ORIN_EMC_KHZ)
    _emc_held_hz: int = EMC_DVFS_HZ

    def read_emc(self, name: str) -> str:
        """A memory-clock file, a write in flight waited out as for devfreq."""
        assert self.emc is not None
        for _ in range(1000):
            text = (self.emc / name).read_text().strip()
            if text:
                return text
            time.sleep(0.001)
        return text

    def _play_bpmp(self) -> None:
        assert self.emc is not None
        locked, rate = (self.emc / "mrq_rate_locked").read_text().strip(), (self.emc / "rate").read_text().strip()
        if not (locked and rate):  # a write in flight
            return
        if locked == "0":
            if int(rate) != self.emc_dvfs_hz and (self.emc / "mrq_rate_locked").read_text().strip() == "0":
                put(self.emc / "rate", self.emc_dvfs_hz)
            self._emc_held_hz = self.emc_dvfs_hz
        elif int(rate) != self._emc_held_hz:
            max_hz = int((self.emc / "max_rate").read_text().strip())
            if int(rate) in self.emc_levels_hz and int(rate) <= max_hz:
                self._emc_held_hz = int(rate)
            else:
                put(self.emc / "rate", self._emc_held_hz)

    def read(self, name: str) -> str:
        """A devfreq file as sysfs would show it: a write in flight (truncated, not yet written) is waited out."""
        for _ in range(1000):
            text = (self.devfreq / name).read_text().strip()
            if text:
                return text
            time.sleep(0.001)
        return text

    def start(self, *, period_s: float = 0.002) -> FakeJetson:
        self.t0 = t0 = time.monotonic()

        def run() -> None:
            while not self._stop.wait(period_s):
                try:  # edpilot writes with a plain open/write: a read can land between truncate and write
                    lo, hi = int(self.read("min_freq")), int(self.read("max_freq"))
                    cur = int(self.read("cur_freq"))
                except (ValueError, OSError):  # a file a test is replacing
                    continue
                if not lo <= cur <= hi:
                    put(self.devfreq / "cur_freq", min(max(cur, lo), hi))
                if self.emc is not None:
                    try:
                        self._play_bpmp()
                    except (ValueError, OSError):
                        pass
                if self.waveform is not None:
                    put(self.gpu_rail_current, int(round(self.waveform(time.monotonic() - t0))))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def build_tree(
    root: Path,
    *,
    jetpack: int = 5,
    rails=AGX_ORIN_RAILS,
    interval_ms: int = 430,
    debugfs: str = "mounted",
    emc_levels: str = "possible_rates",
) -> FakeJetson:
    """Create the files of a Jetson AGX Orin (JetPack 5 or 6) under `root`.

    `debugfs`: "mounted" (with the BPMP memory clock), "unmounted" (an empty mount point) or "no-emc" (mounted,
    no BPMP clock). `emc_levels`: where the EMC table is listed (one of EMC_SOURCES; "none" lists it nowhere).
    """
    if jetpack == 5:
        gpu_dev = root / "sys/devices/17000000.ga10b"
        node = "17000000.ga10b"
    else:
        gpu_dev = root / "sys/devices/platform/bus@0/17000000.gpu"
        node = "17000000.gpu"
    devfreq = gpu_dev / "devfreq" / node
    put(devfreq / "available_frequencies", " ".join(map(str, ORIN_LEVELS_HZ)))
    put(devfreq / "min_freq", ORIN_LEVELS_HZ[0])
    put(devfreq / "max_freq", ORIN_LEVELS_HZ[-1])
    put(devfreq / "cur_freq", ORIN_LEVELS_HZ[5])
    put(devfreq / "governor", "nvhost_podgov")
    put(devfreq / "available_governors", "nvhost_podgov userspace performance simple_ondemand")
    put(gpu_dev / "load", 412)
    class_dir = root / "sys/class/devfreq"
    class_dir.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(devfreq, class_dir), class_dir / node)
    put(root / "var/lib/nvpmodel/status", "pmode:0000")
    hwmons = []
    for i, (chip, channels) in enumerate(rails):
        hwmon = root / f"sys/bus/i2c/drivers/ina3221/{chip}/hwmon/hwmon{i + 3}"
        for n, (label, mv, ma) in enumerate(channels, start=1):
            put(hwmon / f"in{n}_label", label)
            put(hwmon / f"in{n}_input", mv)
            put(hwmon / f"curr{n}_input", ma)
        put(hwmon / "in7_label", "sum of shunt voltages")
        put(hwmon / "in7_input", 120)
        put(hwmon / "update_interval", interval_ms)
        put(hwmon / "name", "ina3221")
        hwmons.append(hwmon)
    fake = FakeJetson(root=root, devfreq=devfreq, hwmons=hwmons, gpu_rail_current=hwmons[0] / "curr1_input")
    debug = root / "sys/kernel/debug"
    debug.mkdir(parents=True, exist_ok=True)
    if debugfs == "unmounted":
        return fake
    put(debug / "bpmp/debug/clk/gpc0clk/rate", ORIN_LEVELS_HZ[5])
    if debugfs == "no-emc":
        return fake
    emc = debug / "bpmp/debug/clk/emc"
    put(emc / "rate", EMC_DVFS_HZ)
    put(emc / "min_rate", AGX_ORIN_EMC_KHZ[0] * 1000)
    put(emc / "max_rate", AGX_ORIN_EMC_KHZ[-1] * 1000)
    put(emc / "mrq_rate_locked", 0)
    put(emc / "state", 1)
    if emc_levels == "possible_rates":
        put(debug / "bpmp/debug/emc/possible_rates", " ".join(map(str, AGX_ORIN_EMC_KHZ)) + " (kHz)")
    elif emc_levels == "available_rates":
        put(debug / "emc/available_rates", " ".join(str(khz * 1000) for khz in AGX_ORIN_EMC_KHZ))
    elif emc_levels == "tables":
        for khz in AGX_ORIN_EMC_KHZ:
            (debug / f"bpmp/debug/emc/tables/regular/{khz}").mkdir(parents=True)
    fake.emc = emc
    return fake


def sine_ma(mean_ma: float, amp_ma: float, period_s: float):
    """A current waveform and its exact integral (mA·s) from 0 to t."""

    def value(t: float) -> float:
        return mean_ma + amp_ma * math.sin(2 * math.pi * t / period_s)

    def integral(t0: float, t1: float) -> float:
        k = 2 * math.pi / period_s
        return mean_ma * (t1 - t0) - amp_ma / k * (math.cos(k * t1) - math.cos(k * t0))

    return value, integral
