"""The Jetson backend against fake AGX Orin trees (JetPack 5 and 6)."""

from __future__ import annotations

import time

import pytest

from edpilot.errors import ConfigError, DeviceError, PermissionDenied
from edpilot.hardware import devfreq as devfreq_mod
from edpilot.hardware import open_device, restore_saved
from edpilot.hardware.jetson import JetsonDevice
from edpilot.hardware.state import StateStore
from tests.hardware.fake_jetson import AGX_ORIN_RAILS, ORIN_LEVELS_HZ, ORIN_NX_RAILS, build_tree, sine_ma


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state")


@pytest.fixture(params=[5, 6])
def tree(request, tmp_path):
    fake = build_tree(tmp_path / "root", jetpack=request.param).start()
    yield fake
    fake.stop()


def open_jetson(fake, store, **kw):
    return JetsonDevice(root=fake.root, state_store=store, **kw)


def test_finds_the_node_and_keeps_exact_levels(tree, store):
    dev = open_jetson(tree, store)
    try:
        assert dev.gpu.node == tree.devfreq.resolve()
        assert len(dev.freqs_mhz()) == 13
        assert dev.freqs_mhz()[-1] == 1300.5 and 1032.75 in dev.freqs_mhz()
        assert dev.current_freq_mhz() == 624.75
        info = dev.describe()
        assert info["governor"] == "nvhost_podgov"
        assert info["total_rails"] == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]
        assert info["rails_w"]["VDD_GPU_SOC"] == pytest.approx(8.0)
        assert "NC" not in info["rails_w"] and "sum of shunt voltages" not in info["rails_w"]
        assert info["update_interval_ms"] == 430
        assert info["gpu_load_pct"] == 41.2
        assert info["nvpmodel"] == "pmode:0000"
        assert info["can_set_clocks"] is True
    finally:
        dev.close()


def test_total_rail_choice(tmp_path, store):
    nx = build_tree(tmp_path / "nx", rails=ORIN_NX_RAILS)
    dev = JetsonDevice(root=nx.root, state_store=store)
    assert [r.label for r in dev.rails.total] == ["VDD_IN"]
    assert dev.rails.power_w() == pytest.approx(12.0)
    dev.close()
    agx = build_tree(tmp_path / "agx", rails=AGX_ORIN_RAILS)
    dev = JetsonDevice(root=agx.root, rails=["VDD_GPU_SOC", "VDD_CPU_CV"], state_store=store)
    assert dev.rails.power_w() == pytest.approx(8.0 + 3.0)
    dev.close()
    with pytest.raises(ConfigError, match="unknown rail.*this board has: VDD_GPU_SOC"):
        JetsonDevice(root=agx.root, rails=["VDD_IN"], state_store=store)


def test_not_a_jetson(tmp_path):
    with pytest.raises(DeviceError, match="no Jetson GPU devfreq node"):
        open_device("jetson", sysfs_root=tmp_path)


def test_pin_verifies_and_restore_puts_everything_back(tree, store):
    dev = open_jetson(tree, store)
    try:
        for mhz in (522.75, 1300.5, 114.75, 930.75):
            dev.set_freq_mhz(mhz)
            hz = str(int(round(mhz * 1e6)))
            assert tree.read("min_freq") == tree.read("max_freq") == tree.read("cur_freq") == hz
            assert dev.last_switch_s is not None and dev.last_switch_s < 1.0
        assert store.load(dev.key)["min_hz"] == ORIN_LEVELS_HZ[0]  # the original, not an intermediate state
        dev.restore()
        assert tree.read("min_freq") == str(ORIN_LEVELS_HZ[0])
        assert tree.read("max_freq") == str(ORIN_LEVELS_HZ[-1])
        assert tree.read("governor") == "nvhost_podgov"
        assert store.load(dev.key) is None
    finally:
        dev.close()


@pytest.mark.parametrize(
    "start,target",
    [
        ((ORIN_LEVELS_HZ[0], ORIN_LEVELS_HZ[-1]), (ORIN_LEVELS_HZ[4],) * 2),
        ((ORIN_LEVELS_HZ[2],) * 2, (ORIN_LEVELS_HZ[9],) * 2),
        ((ORIN_LEVELS_HZ[9],) * 2, (ORIN_LEVELS_HZ[1],) * 2),
        ((ORIN_LEVELS_HZ[2],) * 2, (ORIN_LEVELS_HZ[8], ORIN_LEVELS_HZ[-1])),
        ((ORIN_LEVELS_HZ[10],) * 2, (ORIN_LEVELS_HZ[0], ORIN_LEVELS_HZ[-1])),
    ],
)
def test_min_never_exceeds_max_while_writing(tmp_path, monkeypatch, start, target):
    fake = build_tree(tmp_path / "root")
    from tests.hardware.fake_jetson import put

    put(fake.devfreq / "min_freq", start[0])
    put(fake.devfreq / "max_freq", start[1])
    real_write = devfreq_mod.write_attr

    def checked_write(path, value, *, how_to_allow):
        real_write(path, value, how_to_allow=how_to_allow)
        assert int(fake.read("min_freq")) <= int(fake.read("max_freq")), f"min > max after writing {path.name}"

    monkeypatch.setattr(devfreq_mod, "write_attr", checked_write)
    devfreq_mod.GpuDevfreq(fake.devfreq).set_range(*target)
    assert (int(fake.read("min_freq")), int(fake.read("max_freq"))) == target


def test_not_root_says_which_file_and_how(tree, store, monkeypatch):
    def refuse(path, value, *, how_to_allow):
        raise PermissionDenied(f"cannot write {path}: permission denied. {how_to_allow}")

    monkeypatch.setattr(devfreq_mod, "write_attr", refuse)
    dev = open_jetson(tree, store)
    try:
        with pytest.raises(PermissionDenied, match=r"min_freq: permission denied.*sudo.*udev.*--dry-run"):
            dev.set_freq_mhz(522.75)
    finally:
        dev.close()


def test_write_attr_turns_permission_error_into_advice(tmp_path, monkeypatch):
    from edpilot.hardware import sysfs

    def no(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("os.open", no)
    with pytest.raises(PermissionDenied, match="cannot write .*min_freq: permission denied. do this"):
        sysfs.write_attr(tmp_path / "min_freq", "1", how_to_allow="do this")


def test_dry_run_changes_nothing(tree, store):
    dev = open_jetson(tree, store, dry_run=True)
    try:
        dev.set_freq_mhz(216.75)
        assert dev.would_set_mhz == 216.75
        assert tree.read("min_freq") == str(ORIN_LEVELS_HZ[0]) and tree.read("cur_freq") == str(ORIN_LEVELS_HZ[5])
        assert store.entries() == []
        caps = dev.capabilities
        assert caps.dry_run and not caps.can_set_clocks and caps.read_only_reason.startswith("dry run")
    finally:
        dev.close()


def test_levels_must_be_exact(tree, store):
    dev = open_jetson(tree, store)
    try:
        with pytest.raises(DeviceError, match="816 MHz is not a level"):
            dev.set_freq_mhz(816)
    finally:
        dev.close()


def test_energy_within_one_percent_of_the_analytic_integral(tmp_path, store):
    fake = build_tree(tmp_path / "root")
    value_ma, integral_mas = sine_ma(2000.0, 1500.0, period_s=0.37)
    fake.waveform = value_ma
    fake.start(period_s=0.001)
    time.sleep(0.05)
    dev = JetsonDevice(root=fake.root, state_store=store, sample_interval_s=0.005)
    try:
        time.sleep(0.1)
        t_a, e_a = time.monotonic(), dev.energy_j()
        time.sleep(2.0)
        t_b, e_b = time.monotonic(), dev.energy_j()
    finally:
        dev.close()
        fake.stop()
    constant_w = (600 + 900 + 300) * 5000 / 1e6
    expected_j = constant_w * (t_b - t_a) + 5.0 * integral_mas(t_a - fake.t0, t_b - fake.t0) / 1000
    assert e_b - e_a == pytest.approx(expected_j, rel=0.01)


def test_restore_saved_undoes_a_left_over_state(tree, store):
    dev = open_jetson(tree, store)
    dev.set_freq_mhz(420.75)
    dev.close()  # no restore: as if killed
    assert tree.read("max_freq") == "420750000"
    outcomes = restore_saved(store, sysfs_root_dir=tree.root)
    assert [(o.key, o.status) for o in outcomes] == [(dev.key, "restored")]
    assert tree.read("max_freq") == str(ORIN_LEVELS_HZ[-1]) and tree.read("min_freq") == str(ORIN_LEVELS_HZ[0])
    assert restore_saved(store, sysfs_root_dir=tree.root) == []


def test_restore_writes_a_node_that_a_kill_left_half_written(tree, store):
    """On a tree of plain files a SIGKILL between truncating and writing leaves a node empty; restore writes it."""
    from tests.hardware.fake_jetson import put

    dev = open_jetson(tree, store)
    dev.set_freq_mhz(420.75)
    dev.close()  # no restore: as if killed
    put(tree.devfreq / "min_freq", "")
    outcomes = restore_saved(store, sysfs_root_dir=tree.root)
    assert [(o.key, o.status) for o in outcomes] == [(dev.key, "restored")]
    assert tree.read("max_freq") == str(ORIN_LEVELS_HZ[-1]) and tree.read("min_freq") == str(ORIN_LEVELS_HZ[0])


def test_read_only_searches_batch_size_at_the_current_clock(tree, store):
    from edpilot.backends import Backends, build_space

    dev = open_jetson(tree, store, read_only=True)
    try:
        with pytest.raises(DeviceError, match="may not change clocks: --read-only"):
            dev.set_freq_mhz(522.75)
        space = build_space(Backends(dev, None), batches="1,4")  # type: ignore[arg-type]
        assert space.freqs_mhz == (624.75,) and space.batch_sizes == (1, 4)
        assert dev.describe()["can_set_clocks"] is False
        assert tree.read("min_freq") == str(ORIN_LEVELS_HZ[0])
    finally:
        dev.close()
