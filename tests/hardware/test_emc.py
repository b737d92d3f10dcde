"""The Jetson memory clock (BPMP debugfs `clk/emc`) against fake AGX Orin trees whose kernel thread plays the BPMP."""

from __future__ import annotations

import json
import os
import re

import pytest

from edpilot.errors import DeviceError, PermissionDenied
from edpilot.hardware import emc as emc_mod
from edpilot.hardware import guarded, restore_saved
from edpilot.hardware.jetson import JetsonDevice
from edpilot.hardware.state import StateStore
from tests.hardware.fake_jetson import EMC_DVFS_HZ, EMC_SOURCES, ORIN_LEVELS_HZ, build_tree, put

AGX_EMC_MHZ = (204.0, 665.6, 2133.0, 3199.0)


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state")


@pytest.fixture(params=[5, 6])
def tree(request, tmp_path):
    fake = build_tree(tmp_path / "root", jetpack=request.param).start()
    yield fake
    fake.stop()


def emc_knob(dev):
    return {k.name: k for k in dev.knobs()}["emc_mhz"]


def untouched(fake):
    """The tree as built: GPU range and memory clock as the kernel left them."""
    gpu = (fake.read("min_freq"), fake.read("max_freq")) == (str(ORIN_LEVELS_HZ[0]), str(ORIN_LEVELS_HZ[-1]))
    if fake.emc is None:
        return gpu
    return gpu and (fake.read_emc("mrq_rate_locked"), fake.read_emc("rate")) == ("0", str(EMC_DVFS_HZ))


@pytest.mark.parametrize("source", EMC_SOURCES[:3])
def test_levels_are_read_from_the_boards_table(tmp_path, store, source):
    fake = build_tree(tmp_path / "root", emc_levels=source)
    dev = JetsonDevice(root=fake.root, state_store=store)
    try:
        knob = emc_knob(dev)
        assert knob.levels == AGX_EMC_MHZ and knob.unit == "MHz" and knob.writable
        assert source.split("_")[0] in knob.levels_source
        assert dev.knob_level("emc_mhz") == 2133.0
        assert [k.name for k in dev.knobs()] == ["gpu_mhz", "emc_mhz"]
    finally:
        dev.close()


def test_a_board_that_lists_no_table_gets_the_clocks_two_ends_and_says_so(tmp_path, store):
    fake = build_tree(tmp_path / "root", emc_levels="none").start()
    dev = JetsonDevice(root=fake.root, state_store=store)
    try:
        knob = emc_knob(dev)
        assert knob.levels == (204.0, 3199.0) and "lists no EMC table" in knob.levels_source
        dev.set_knob("emc_mhz", 204.0)  # the kernel had it at 2133 MHz, a rate of the clock's range: saved
        assert fake.read_emc("rate") == "204000000"
        dev.restore()
        assert untouched(fake)
    finally:
        dev.close()
        fake.stop()


def test_pin_holds_the_level_and_restore_gives_the_clock_back_to_the_kernel(tree, store):
    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        for mhz in (665.6, 204.0, 3199.0):
            dev.set_knob("emc_mhz", mhz)
            assert tree.read_emc("rate") == str(int(round(mhz * 1e6))) and tree.read_emc("mrq_rate_locked") == "1"
            assert dev.knob_level("emc_mhz") == mhz and dev.last_emc_switch_s is not None
        saved = store.load(dev.emc_key)
        assert saved["rate_hz"] == EMC_DVFS_HZ and saved["mrq_rate_locked"] == 0  # the original, not the 2nd pin
        assert saved["backend"] == "jetson-emc" and saved["device"] == dev.key
        assert untouched(tree) is False
        dev.restore()
        assert untouched(tree) and store.entries() == []
    finally:
        dev.close()


def test_gpu_and_memory_clock_are_saved_and_undone_each(tree, store):
    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        dev.set_freq_mhz(522.75)
        dev.set_knob("emc_mhz", 665.6)
        assert sorted(e.state["backend"] for e in store.entries()) == ["jetson", "jetson-emc"]
        dev.restore()
        assert untouched(tree) and store.entries() == []
        dev.restore()  # idempotent
    finally:
        dev.close()


def test_a_clock_jetson_clocks_had_locked_stays_locked_at_its_rate(tree, store):
    put(tree.emc / "mrq_rate_locked", 1)
    put(tree.emc / "rate", 3199000000)
    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        dev.set_knob("emc_mhz", 204.0)
        assert tree.read_emc("rate") == "204000000"
        dev.restore()
        assert (tree.read_emc("mrq_rate_locked"), tree.read_emc("rate")) == ("1", "3199000000")
    finally:
        dev.close()


def test_a_level_above_max_rate_is_refused_before_anything_changes(tree, store):
    put(tree.emc / "max_rate", 2133000000)  # a power mode that caps the memory clock
    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        with pytest.raises(DeviceError, match="above the memory clock's max_rate 2133 MHz"):
            with guarded(dev):
                dev.set_knob("emc_mhz", 3199.0)
    finally:
        dev.close()
    assert untouched(tree) and store.entries() == []


def test_a_rate_the_bpmp_drops_is_an_error_and_the_guard_puts_everything_back(tree, store):
    tree.emc_levels_hz = (204000000, 2133000000, 3199000000)  # the firmware holds no 665.6 MHz table
    dev = JetsonDevice(root=tree.root, state_store=store)
    dev.emc_confirm_s = 0.2  # room for the fake kernel thread (2 ms period) on a loaded machine
    with pytest.raises(DeviceError, match="did not reach 665600000 Hz.*drops rates"):
        with guarded(dev):
            dev.set_freq_mhz(522.75)
            dev.set_knob("emc_mhz", 665.6)
    assert untouched(tree) and store.entries() == []


def test_levels_must_be_exact(tree, store):
    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        with pytest.raises(DeviceError, match="1600 MHz is not a level of emc_mhz; the nearest is 2133"):
            dev.set_knob("emc_mhz", 1600)
        with pytest.raises(DeviceError, match="has no knob 'cpu_mhz'"):
            dev.set_knob("cpu_mhz", 1000)
    finally:
        dev.close()
    assert untouched(tree)


@pytest.mark.parametrize(
    "debugfs,words", [("unmounted", "mount -t debugfs none .*/sys/kernel/debug"), ("no-emc", "no BPMP memory clock")]
)
def test_no_memory_clock_is_one_line_and_nothing_changes(tmp_path, store, debugfs, words):
    fake = build_tree(tmp_path / "root", debugfs=debugfs).start()
    dev = JetsonDevice(root=fake.root, state_store=store)
    try:
        knob = emc_knob(dev)
        assert knob.levels == () and not knob.writable and "\n" not in knob.read_only_reason
        assert dev.knob_level("emc_mhz") is None and dev.describe()["memory_clock"]["writable"] is False
        with pytest.raises(DeviceError, match=words):
            dev.set_knob("emc_mhz", 665.6)
        dev.set_freq_mhz(522.75)  # the GPU knob still works
        dev.restore()
    finally:
        dev.close()
        fake.stop()
    assert untouched(fake) and store.entries() == []


def test_a_clock_whose_rate_cannot_be_held_is_not_a_knob(tmp_path, store):
    fake = build_tree(tmp_path / "root")
    (fake.emc / "mrq_rate_locked").unlink()
    dev = JetsonDevice(root=fake.root, state_store=store)
    try:
        assert "has no mrq_rate_locked: edpilot cannot hold its rate" in emc_knob(dev).read_only_reason
    finally:
        dev.close()


def test_debugfs_only_root_may_read_says_to_use_sudo(tmp_path, store, monkeypatch):
    fake = build_tree(tmp_path / "root")
    real_listdir = os.listdir

    def listdir(path):
        if str(path).endswith("sys/kernel/debug"):
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)

    monkeypatch.setattr(emc_mod.os, "listdir", listdir)
    dev = JetsonDevice(root=fake.root, state_store=store)
    try:
        assert "only root may read: run edpilot with sudo" in emc_knob(dev).read_only_reason
    finally:
        dev.close()


def test_not_root_is_read_only_saying_what_to_do_and_nothing_changes(tree, store, monkeypatch):
    monkeypatch.setattr(emc_mod, "writable", lambda path: False)
    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        knob = emc_knob(dev)
        assert knob.levels == AGX_EMC_MHZ and not knob.writable
        with pytest.raises(PermissionDenied, match=r"no permission to write .*clk/emc/rate.*sudo.*--dry-run"):
            dev.set_knob("emc_mhz", 665.6)
    finally:
        dev.close()
    assert untouched(tree) and store.entries() == []


def test_dry_run_and_read_only_never_touch_the_memory_clock(tree, store):
    dev = JetsonDevice(root=tree.root, state_store=store, dry_run=True)
    try:
        dev.set_knob("emc_mhz", 204.0)
        assert dev.would_set_emc_mhz == 204.0
    finally:
        dev.close()
    dev = JetsonDevice(root=tree.root, state_store=store, read_only=True)
    try:
        with pytest.raises(DeviceError, match="--read-only"):
            dev.set_knob("emc_mhz", 204.0)
    finally:
        dev.close()
    assert untouched(tree) and store.entries() == []


def test_restore_saved_undoes_a_left_over_memory_clock(tree, store):
    dev = JetsonDevice(root=tree.root, state_store=store)
    dev.set_freq_mhz(420.75)
    dev.set_knob("emc_mhz", 665.6)
    dev.close()  # no restore: as if killed
    outcomes = restore_saved(store, sysfs_root_dir=tree.root)
    assert sorted((o.key, o.status) for o in outcomes) == [(dev.key, "restored"), (dev.emc_key, "restored")]
    assert untouched(tree) and restore_saved(store, sysfs_root_dir=tree.root) == []


def test_restore_saved_leaves_a_held_memory_clock_to_its_holder(tree, store):
    holder = JetsonDevice(root=tree.root, state_store=store)
    try:
        holder.set_knob("emc_mhz", 665.6)
        outcomes = restore_saved(store, sysfs_root_dir=tree.root)
        assert [(o.key, o.status) for o in outcomes] == [(holder.emc_key, "busy")]
        assert tree.read_emc("rate") == "665600000"
        holder.restore()
    finally:
        holder.close()
    assert untouched(tree)


def test_restore_saved_when_debugfs_is_gone_says_to_mount_it_and_keeps_the_file(tree, store, tmp_path):
    dev = JetsonDevice(root=tree.root, state_store=store)
    dev.set_knob("emc_mhz", 665.6)
    dev.close()
    other = build_tree(tmp_path / "unmounted", debugfs="unmounted")
    [outcome] = restore_saved(store, sysfs_root_dir=other.root)
    assert outcome.status == "failed" and "mount -t debugfs" in outcome.message
    assert store.load(dev.emc_key) is not None
    gone = build_tree(tmp_path / "no-emc", debugfs="no-emc")
    [outcome] = restore_saved(store, sysfs_root_dir=gone.root)
    assert outcome.status == "stale"
    [outcome] = restore_saved(store, sysfs_root_dir=gone.root, discard=True)
    assert outcome.status == "discarded" and store.entries() == []


def test_restore_writes_only_the_clock_edpilot_finds(tree, store, tmp_path):
    dev = JetsonDevice(root=tree.root, state_store=store)
    dev.set_knob("emc_mhz", 665.6)
    dev.close()
    elsewhere = build_tree(tmp_path / "elsewhere")
    [outcome] = restore_saved(store, sysfs_root_dir=elsewhere.root)
    assert outcome.status == "failed" and "refusing to write there" in outcome.message
    assert elsewhere.read_emc("rate") == str(EMC_DVFS_HZ) and elsewhere.read_emc("mrq_rate_locked") == "0"


@pytest.mark.parametrize(
    "change,words",
    [({"rate_hz": 1600000000}, "not a level"), ({"mrq_rate_locked": 7}, "0 or 1"), ({"clk": 3}, "clk \\(text\\)")],
)
def test_restore_accepts_only_listed_rates_and_a_0_or_1_lock(tree, store, change, words):
    dev = JetsonDevice(root=tree.root, state_store=store)
    dev.set_knob("emc_mhz", 665.6)
    dev.close()
    path = store.path(dev.emc_key)
    state = {**json.loads(path.read_text()), **change}
    path.write_text(json.dumps(state))
    [outcome] = restore_saved(store, sysfs_root_dir=tree.root)
    assert outcome.status == "failed" and re.search(words, outcome.message)
    assert tree.read_emc("rate") == "665600000"


def test_top_reads_the_memory_clock_the_fake_bpmp_holds(tree, store):
    from edpilot.watch import DeviceReader

    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        assert DeviceReader(dev).read().emc_mhz == 2133.0
        dev.set_knob("emc_mhz", 665.6)
        assert DeviceReader(dev).read().emc_mhz == 665.6
        dev.restore()
    finally:
        dev.close()
