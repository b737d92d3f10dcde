"""The public interface: `edpilot.__all__`, py.typed in the wheel, and open_device/open_engine as with-blocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile

import pytest

import edpilot
from edpilot.errors import DeviceError
from tests.hardware.fake_jetson import ORIN_LEVELS_HZ, build_tree


def test_all_names_exist_and_star_import_gives_exactly_them():
    namespace: dict[str, object] = {}
    exec("from edpilot import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(edpilot.__all__)
    for name in ("Tuner", "EnergyMonitor", "open_device", "open_engine", "Config", "EdpilotError", "Observation"):
        assert name in edpilot.__all__
    assert issubclass(edpilot.PermissionDenied, edpilot.DeviceError)
    assert issubclass(edpilot.DeviceError, edpilot.EdpilotError)


def test_import_edpilot_stays_light_until_a_name_is_used():
    """The `edpilot` command's Ctrl-C guard runs after `import edpilot`: that import must load nothing heavy."""
    code = "import sys, edpilot; print(sorted(m for m in ('numpy', 'edpilot.tuner') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert set(edpilot._EXPORTS) == set(edpilot.__all__) - {"__version__"}
    with pytest.raises(AttributeError, match="has no attribute 'Tunr'"):
        _ = edpilot.Tunr


def test_the_package_docstring_maps_every_public_module():
    doc = edpilot.__doc__
    for module in ("backends", "monitor", "tuner_api", "tuner", "runner", "search", "space", "objective", "runlog"):
        assert f"`{module}`" in doc
    assert "ConfigError" in doc and "PermissionDenied" in doc


def test_the_wheel_ships_py_typed(tmp_path):
    hatchling = pytest.importorskip("hatchling.builders.wheel")
    root = __import__("pathlib").Path(edpilot.__file__).parents[2]
    (wheel,) = hatchling.WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"])
    names = zipfile.ZipFile(wheel).namelist()
    assert "edpilot/py.typed" in names and "edpilot/monitor.py" in names and "edpilot/tuner_api.py" in names


def test_open_device_puts_the_clock_back_after_an_exception(tmp_path):
    tree = build_tree(tmp_path / "root").start()
    before = {name: tree.read(name) for name in ("min_freq", "max_freq", "governor")}
    try:
        with pytest.raises(RuntimeError, match="serving failed"):
            with edpilot.open_device("jetson", sysfs_root=tree.root, state_dir=tmp_path / "state") as device:
                device.set_freq_mhz(ORIN_LEVELS_HZ[3] / 1e6)
                assert int(tree.read("max_freq")) == ORIN_LEVELS_HZ[3]
                raise RuntimeError("serving failed")
        after = {name: tree.read(name) for name in before}
        assert after == before
        assert not list((tmp_path / "state").glob("*.json"))  # nothing left for `edpilot restore`
    finally:
        tree.stop()


def test_open_device_puts_the_clock_back_on_sigterm(tmp_path):
    tree = build_tree(tmp_path / "root").start()
    try:
        with pytest.raises(SystemExit) as exit_info:
            with edpilot.open_device("jetson", sysfs_root=tree.root, state_dir=tmp_path / "state") as device:
                device.set_freq_mhz(ORIN_LEVELS_HZ[2] / 1e6)
                os.kill(os.getpid(), signal.SIGTERM)
        assert exit_info.value.code == 128 + signal.SIGTERM
        assert (int(tree.read("min_freq")), int(tree.read("max_freq"))) == (ORIN_LEVELS_HZ[0], ORIN_LEVELS_HZ[-1])
    finally:
        tree.stop()


def test_open_device_puts_the_simulated_clock_back():
    with edpilot.open_device("sim:orin-agx-32gb") as device:
        top_mhz = device.freqs_mhz()[-1]
        device.set_freq_mhz(device.freqs_mhz()[0])
        assert device.current_freq_mhz() == device.freqs_mhz()[0]
    assert device.current_freq_mhz() == top_mhz


def test_open_device_options_and_errors():
    with edpilot.open_device("sim", read_only=True) as device:
        assert device.capabilities.can_set_clocks is False
    with pytest.raises(edpilot.ConfigError, match="unknown device 'tpu'"):
        with edpilot.open_device("tpu"):
            pass
    with pytest.raises(DeviceError):
        with edpilot.open_device("jetson", sysfs_root="/nonexistent-root"):
            pass


def test_open_engine_closes_and_refuses_a_real_engine_on_the_simulator():
    closed: list[bool] = []
    with edpilot.open_device("sim") as device:
        with edpilot.open_engine("sim", device=device) as engine:
            engine.close = lambda: closed.append(True)  # type: ignore[method-assign]
            assert engine.describe()["backend"] == "sim"
        assert closed == [True]
        with pytest.raises(edpilot.ConfigError, match="runs only the sim engine"):
            with edpilot.open_engine("openai:http://127.0.0.1:9", device=device):
                pass
    with pytest.raises(edpilot.ConfigError, match="unknown engine"):
        with edpilot.open_engine("tgi:x"):
            pass
