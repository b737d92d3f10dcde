"""Saved state and `restore_saved`: atomic, trusted, checked against the device; one bad file never blocks another."""

from __future__ import annotations

import json
import os
import stat

import pytest

from edpilot.errors import DeviceError
from edpilot.hardware import devfreq as devfreq_mod
from edpilot.hardware import restore_saved
from edpilot.hardware.jetson import JetsonDevice
from edpilot.hardware.lock import DeviceBusy
from edpilot.hardware.state import CorruptState, StateStore
from tests.hardware.fake_jetson import ORIN_LEVELS_HZ, build_tree, put

ORIGINAL = {"min_freq": str(ORIN_LEVELS_HZ[0]), "max_freq": str(ORIN_LEVELS_HZ[-1]), "governor": "nvhost_podgov"}


@pytest.fixture
def tree(tmp_path):
    fake = build_tree(tmp_path / "root").start()
    yield fake
    fake.stop()


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state")


def files(fake):
    return {name: fake.read(name) for name in ORIGINAL}


def pinned_and_killed(fake, store, mhz=420.75):
    """Pin, then drop the device without restoring (as a SIGKILL would): the state file stays."""
    dev = JetsonDevice(root=fake.root, state_store=store)
    dev.set_freq_mhz(mhz)
    dev.close()
    return dev.key


def restore(store, fake, **kw):
    return restore_saved(store, sysfs_root_dir=fake.root, **kw)


def test_state_is_written_atomically_and_privately(tree, store):
    key = pinned_and_killed(tree, store)
    path = store.path(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in store.directory.iterdir() if not p.name.endswith(".lock")) == [path.name]
    assert json.loads(path.read_text())["min_hz"] == ORIN_LEVELS_HZ[0]


CORRUPTIONS = {
    "empty": b"",
    "truncated": b'{"key": "jetson:/x", "backend": "jets',
    "binary": b"\x00\xff\xfe garbage",
    "not an object": b"[1, 2, 3]",
    "no key": b'{"backend": "jetson"}',
    "wrong types": b'{"key": "jetson:x", "backend": "jetson", "node": 5, "min_hz": "low", "max_hz": [], "governor": 1}',
    "unknown backend": b'{"key": "x", "backend": "amdgpu"}',
    "huge": b'{"key": "x", "backend": "jetson", "pad": "' + b"a" * 100_000 + b'"}',
}


def test_every_corrupt_file_is_reported_and_the_valid_one_still_restored(tree, store):
    store.ensure_directory()
    for i, (name, data) in enumerate(CORRUPTIONS.items()):
        path = store.directory / f"{i:02d}-{name.replace(' ', '_')}.json"
        path.write_bytes(data)
        os.chmod(path, 0o600)
        os.utime(path, (1, 1 + i))  # older than the valid file: read first
    (store.directory / "99-dir.json").mkdir()
    key = pinned_and_killed(tree, store)
    outcomes = restore(store, tree)
    by_path = {os.path.basename(o.path): o for o in outcomes}
    assert by_path[store.path(key).name].status == "restored"
    assert files(tree) == ORIGINAL
    bad = [o for o in outcomes if not o.ok]
    assert len(bad) == len(CORRUPTIONS) + 1
    assert all(o.status in ("corrupt", "failed", "untrusted") for o in bad)
    discarded = restore(store, tree, discard=True)
    assert {o.status for o in discarded} <= {"discarded", "failed", "untrusted"}
    assert not any(p.name.startswith(("00-", "01-", "02-", "03-", "04-", "07-")) for p in store.directory.iterdir())


def test_a_corrupt_state_file_stops_the_pin_before_any_change(tree, store):
    key = JetsonDevice(root=tree.root, state_store=store).key
    store.ensure_directory()
    store.path(key).write_text('{"key": "' + key + '", "backend": "jet')
    os.chmod(store.path(key), 0o600)
    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        with pytest.raises(CorruptState, match=r"corrupt.*restore --discard"):
            dev.set_freq_mhz(522.75)
        dev.restore()
    finally:
        dev.close()
    assert files(tree) == ORIGINAL


def test_stale_state_is_reported_and_discarded(tree, store, tmp_path):
    store.ensure_directory()
    gone = {"key": "jetson:/gone", "backend": "jetson", "node": str(tmp_path / "gone/17000000.ga10b")}
    gone |= {"min_hz": ORIN_LEVELS_HZ[0], "max_hz": ORIN_LEVELS_HZ[-1], "governor": "nvhost_podgov"}
    store.save("jetson:/gone", gone)
    key = pinned_and_killed(tree, store)
    outcomes = {o.key: o for o in restore(store, tree)}
    assert outcomes["jetson:/gone"].status == "stale" and "--discard" in outcomes["jetson:/gone"].message
    assert outcomes[key].status == "restored" and files(tree) == ORIGINAL
    assert [o.status for o in restore(store, tree, discard=True)] == ["discarded"]
    assert store.entries() == []


def test_restore_writes_only_under_the_discovered_node(tree, store, tmp_path):
    evil = tmp_path / "etc-like"
    for name, value in {"available_frequencies": " ".join(map(str, ORIN_LEVELS_HZ)), **ORIGINAL}.items():
        put(evil / name, value)
    key = pinned_and_killed(tree, store)
    state = json.loads(store.path(key).read_text())
    store.path(key).write_text(json.dumps({**state, "node": str(evil), "min_hz": ORIN_LEVELS_HZ[3]}))
    (outcome,) = restore(store, tree)
    assert outcome.status == "failed" and "refusing to write there" in outcome.message
    assert (evil / "min_freq").read_text().strip() == ORIGINAL["min_freq"]


@pytest.mark.parametrize(
    "change,words",
    [
        ({"governor": "performance; rm -rf /"}, "governor"),
        ({"min_hz": 816_000_000}, "not a level"),
        ({"min_hz": ORIN_LEVELS_HZ[-1], "max_hz": ORIN_LEVELS_HZ[0]}, "above max"),
    ],
)
def test_restore_accepts_only_listed_governors_and_levels(tree, store, change, words):
    key = pinned_and_killed(tree, store)
    state = json.loads(store.path(key).read_text())
    store.path(key).write_text(json.dumps({**state, **change}))
    (outcome,) = restore(store, tree)
    assert outcome.status == "failed" and words in outcome.message
    assert tree.read("governor") == "nvhost_podgov" and tree.read("max_freq") == "420750000"


def test_restore_never_follows_a_planted_symlink(tree, store, tmp_path):
    key = pinned_and_killed(tree, store)
    victim = tmp_path / "victim"
    victim.write_text("420750000\n")
    (tree.devfreq / "min_freq").unlink()
    os.symlink(victim, tree.devfreq / "min_freq")
    (outcome,) = restore(store, tree)
    assert outcome.status == "failed" and "symbolic link" in outcome.message
    assert victim.read_text() == "420750000\n" and store.path(key).exists()


def test_restore_does_not_rewrite_what_already_holds(tree, store, monkeypatch):
    pinned_and_killed(tree, store)
    for name, value in ORIGINAL.items():
        put(tree.devfreq / name, value)  # someone (a reboot) already put it back

    def refuse(path, value, *, how_to_allow):
        raise DeviceError(f"{path} is read-only")

    monkeypatch.setattr(devfreq_mod, "write_attr", refuse)
    (outcome,) = restore(store, tree)
    assert outcome.status == "already" and store.entries() == []


def test_files_owned_by_someone_else_are_not_trusted(tree, store):
    key = pinned_and_killed(tree, store)
    os.chown(store.path(key), 1000, 1000)
    (outcome,) = restore(store, tree)
    assert outcome.status == "untrusted" and "owned by uid 1000" in outcome.message
    assert tree.read("max_freq") == "420750000"
    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        with pytest.raises(DeviceError, match="owned by uid 1000"):
            dev.set_freq_mhz(522.75)
    finally:
        dev.close()


def test_a_directory_others_may_write_is_not_trusted(tree, store):
    pinned_and_killed(tree, store)
    os.chmod(store.directory, 0o777)
    with pytest.raises(DeviceError, match="may be written by others"):
        restore(store, tree)
    dev = JetsonDevice(root=tree.root, state_store=store)
    try:
        with pytest.raises(DeviceError, match="may be written by others"):
            dev.set_freq_mhz(522.75)
    finally:
        dev.close()
    assert tree.read("max_freq") == "420750000"


def test_one_process_per_device(tree, store):
    first = JetsonDevice(root=tree.root, state_store=store)
    second = JetsonDevice(root=tree.root, state_store=store)
    try:
        first.set_freq_mhz(522.75)
        with pytest.raises(DeviceBusy, match=f"in use by another edpilot process \\(pid {os.getpid()}\\)"):
            second.set_freq_mhz(1300.5)
        assert tree.read("max_freq") == "522750000"
        (outcome,) = restore(store, tree)
        assert outcome.status == "busy" and tree.read("max_freq") == "522750000"
        first.restore()
        second.set_freq_mhz(1300.5)
        second.restore()
    finally:
        first.close()
        second.close()
    assert files(tree) == ORIGINAL
