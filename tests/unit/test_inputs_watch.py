"""The inputs watch on a simulated clock: a rotated Secret volume (kubelet's `..data` swap), a file
rewritten in place, an edited properties file each wake the reconcile loop once; nothing changed wakes
nothing; 0 turns it off; an unreadable input half-way through a swap does not end the polling."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from reconciler.settings import InputSettings
from reconciler.watching.inputs import UNREADABLE, InputsWatch, fingerprint
from tests.fake_clock import FakeClock

Step = Callable[[], None]


class Volume:
    """A Secret volume as kubelet lays it out: `key -> ..data/key`, `..data -> ..<timestamp>/`."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.root = root
        root.mkdir()
        self.version = 0
        self._write_version(files)
        (root / "..data").symlink_to(self._dir_name())
        for key in files:
            (root / key).symlink_to(f"..data/{key}")

    def _dir_name(self) -> str:
        return f"..2026_12_03_12_00_0{self.version}.123456789"

    def _write_version(self, files: dict[str, str]) -> None:
        target = self.root / self._dir_name()
        target.mkdir()
        for key, value in files.items():
            (target / key).write_text(value)

    def begin_swap(self, files: dict[str, str]) -> None:
        """kubelet's first half: the new timestamped directory, not yet pointed at."""
        self.version += 1
        self._write_version(files)

    def finish_swap(self) -> None:
        """The second half: a new symlink renamed onto `..data` (atomic), then the old directory goes."""
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(self._dir_name())
        old = os.readlink(self.root / "..data")
        os.replace(tmp, self.root / "..data")
        for f in (self.root / old).iterdir():
            f.unlink()
        (self.root / old).rmdir()

    def swap(self, files: dict[str, str]) -> None:
        self.begin_swap(files)
        self.finish_swap()


class ScriptedClock(FakeClock):
    """Runs one step of a script before each wait, and records whether the previous poll woke the loop."""

    def __init__(self, wake: threading.Event, steps: list[Step]) -> None:
        super().__init__(horizon=3600.0)
        self.wake = wake
        self.steps = steps
        self.woken: list[bool] = []

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if self.waits:  # the first wait comes before any poll
            self.woken.append(self.wake.is_set())
            self.wake.clear()
        if self.steps:
            self.steps.pop(0)()
        else:
            self.stop.set()
        return super().wait(event, timeout)


@pytest.fixture
def volume(tmp_path: Path) -> Volume:
    return Volume(tmp_path / "db", {"password": "s3cret-one", "username": "app"})


def watch_of(
    settings: InputSettings, clock: FakeClock, *, poll: float = 5.0
) -> tuple[InputsWatch, threading.Event]:
    wake = threading.Event()
    return InputsWatch(settings, clock=clock, wake=wake, poll_seconds=poll), wake


def nothing() -> None:
    pass


def test_nothing_changed_wakes_nothing(volume: Volume, tmp_path: Path) -> None:
    props = tmp_path / "props"
    props.mkdir()
    (props / "app.properties").write_text("a=1\n")
    settings = InputSettings(properties_dirs=[str(props)], secret_dirs=[f"db={volume.root}"])
    clock = FakeClock(horizon=60)
    watch, wake = watch_of(settings, clock)
    watch.run()
    assert clock.waits == [5.0] * 12  # polled every 5 s until the stop
    assert not wake.is_set() and watch.changes == 0


def test_a_same_size_rewrite_with_the_same_mtime_is_a_change(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    key = files / "token"
    key.write_text("aaaa")
    before = key.stat()
    watch, wake = watch_of(InputSettings(files_dirs=[str(files)]), FakeClock())
    key.write_text("bbbb")  # in place: same inode, same size...
    os.utime(key, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...and the clock did not tick
    assert watch.check() and wake.is_set()
    assert not watch.check()  # once


def test_a_kubelet_data_swap_wakes_the_loop_exactly_once(volume: Volume) -> None:
    settings = InputSettings(secret_dirs=[f"db={volume.root}"])
    clock = ScriptedClock(threading.Event(), [])
    watch = InputsWatch(settings, clock=clock, wake=clock.wake, poll_seconds=5.0)
    clock.steps = [
        nothing,
        lambda: volume.begin_swap({"password": "s3cret-two", "username": "app"}),
        volume.finish_swap,
        nothing,
        nothing,
    ]
    watch.run()
    # The new directory alone is not what templates read; the swap of `..data` is, once.
    assert clock.woken == [False, False, True, False, False]
    assert watch.changes == 1


def test_a_changed_properties_file_is_a_change(tmp_path: Path) -> None:
    props = tmp_path / "props"
    props.mkdir()
    (props / "app.properties").write_text("bootstrap.servers=a:9092\n")
    (props / "notes.txt").write_text("ignored")
    watch, wake = watch_of(InputSettings(properties_dirs=[str(props)]), FakeClock())
    (props / "notes.txt").write_text("not a properties file: templates never see it")
    assert not watch.check()
    (props / "app.properties").write_text("bootstrap.servers=b:9092\n")
    assert watch.check() and wake.is_set()
    (props / "more.properties").write_text("x=1\n")
    assert watch.check()  # a new file is a change too


def test_a_new_or_removed_key_is_a_change(volume: Volume) -> None:
    watch, _wake = watch_of(InputSettings(secret_dirs=[str(volume.root)]), FakeClock())
    volume.swap({"password": "s3cret-one", "username": "app", "host": "db"})
    (volume.root / "host").symlink_to("..data/host")
    assert watch.check()
    volume.swap({"password": "s3cret-one"})
    for key in ("host", "username"):
        (volume.root / key).unlink()
    assert watch.check()
    assert not watch.check()


def test_zero_turns_it_off(volume: Volume) -> None:
    clock = FakeClock(horizon=60)
    watch, wake = watch_of(InputSettings(secret_dirs=[str(volume.root)]), clock, poll=0)
    volume.swap({"password": "s3cret-two"})
    watch.run()  # returns at once
    assert clock.waits == [] and not wake.is_set() and watch.changes == 0


def test_an_unreadable_input_mid_swap_is_a_change_and_polling_goes_on(volume: Volume) -> None:
    settings = InputSettings(secret_dirs=[f"db={volume.root}"])
    clock = ScriptedClock(threading.Event(), [])
    watch = InputsWatch(settings, clock=clock, wake=clock.wake, poll_seconds=5.0)

    def break_it() -> None:
        volume.begin_swap({"password": "s3cret-two", "username": "app"})
        (volume.root / "..data").unlink()  # every key symlink now dangles

    def fix_it() -> None:
        (volume.root / "..data").symlink_to(volume._dir_name())

    clock.steps = [nothing, break_it, nothing, fix_it, nothing]
    watch.run()
    # Unreadable: one wake (the pass reports the real error), then quiet while it stays so; readable
    # again: one more wake.
    assert clock.woken == [False, True, False, True, False]
    assert fingerprint(settings) != UNREADABLE


def test_a_surprise_in_the_fingerprint_does_not_end_the_thread(
    volume: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = InputSettings(secret_dirs=[str(volume.root)])
    clock = FakeClock(horizon=30)
    watch, wake = watch_of(settings, clock)

    def boom(_settings: InputSettings) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr("reconciler.watching.inputs.fingerprint", boom)
    thread = threading.Thread(target=watch.run, name="watch-inputs")
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive() and clock.stop.is_set()  # ran to the horizon
    assert len(clock.waits) == 6 and wake.is_set() and watch.changes == 1


def test_a_fifo_does_not_hang_the_poll(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    os.mkfifo(files / "pipe")
    (files / "sub").mkdir()
    watch, _wake = watch_of(InputSettings(files_dirs=[str(files)]), FakeClock())
    assert not watch.check()


def test_the_fingerprint_is_a_digest_and_is_never_logged(volume: Volume) -> None:
    settings = InputSettings(secret_dirs=[str(volume.root)])
    digest = fingerprint(settings)
    assert len(digest) == 32 and b"s3cret" not in digest
    watch, _wake = watch_of(settings, FakeClock())
    volume.swap({"password": "s3cret-two"})
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:  # raw events: before rendering and before any redaction
            assert watch.check()
    finally:
        structlog.configure(wrapper_class=wrapper)
    assert [e["event"] for e in logs] == ["template inputs changed; reconciling"]
    said = repr(logs) + repr(vars(watch))
    assert "s3cret" not in said and digest.hex() not in said and fingerprint(settings).hex() not in said
