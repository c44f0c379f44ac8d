"""Watch the template inputs on disk: a rotated Secret or edited properties file triggers a pass.

Edge (reads the mounted volumes and properties directories that `clients/inputs.py` renders from).
Every `inputs_poll_seconds` (0: off) it takes a fingerprint of everything a template can read — each
directory's listing, the target of Kubernetes' `..data` symlink, and per file its resolved path,
(inode, size, mtime_ns) and a sha256 of its bytes — and, when that changes, wakes the reconcile loop
by setting the cache's dirty event. The pass re-reads every input and the planner writes only the
configs that changed, so a rotation costs one update of exactly the connectors that use it.

The fingerprint is derived from secrets: only its sha256 digest is kept, in memory, and never logged.
An input that cannot be read (kubelet is half-way through a swap, a directory is gone) counts as one
more state: the change into it and out of it both wake the loop, and the pass reports the real error.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import structlog

from reconciler.clients.inputs import _volume
from reconciler.clock import Clock
from reconciler.settings import InputSettings

log = structlog.get_logger("reconciler.watcher")

UNREADABLE = hashlib.sha256(b"an input could not be read").digest()
DATA_LINK = "..data"  # kubelet's atomically swapped pointer to the current `..<timestamp>` directory

Wanted = Callable[[str], bool]


def _volume_key(name: str) -> bool:
    return not name.startswith(".")  # what `read_volume` reads: dot names are kubelet's bookkeeping


def _properties_file(name: str) -> bool:
    return name.endswith(".properties")


def _sha256(fd: int) -> str:
    h = hashlib.sha256()
    while chunk := os.read(fd, 1 << 16):
        h.update(chunk)
    return h.hexdigest()


def _file_facts(path: Path) -> str | None:
    real = os.path.realpath(path)
    # O_NONBLOCK: opening a FIFO must not hang the poll. fstat on the open file, so the identity and
    # the bytes hashed are of the same file even if kubelet replaces it in between.
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return None  # a subdirectory (keys projected to a sub path): templates do not read it
        digest = _sha256(fd) if stat.S_ISREG(st.st_mode) else "-"  # the pass reports a FIFO or socket
    finally:
        os.close(fd)
    return f"{path.name}\0{real}\0{st.st_mode}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{digest}"


def _directory_facts(path: Path, wanted: Wanted) -> Iterator[str]:
    yield f"dir\0{os.path.realpath(path)}"
    link = path / DATA_LINK
    if link.is_symlink():
        yield f"data\0{os.readlink(link)}"
    with os.scandir(path) as listing:
        names = sorted(e.name for e in listing if wanted(e.name))
    for name in names:
        facts = _file_facts(path / name)
        if facts is not None:
            yield facts


def _sources(settings: InputSettings) -> Iterator[tuple[Path, Wanted]]:
    for d in settings.properties_dirs:
        yield Path(d), _properties_file
    for _name, path in map(_volume, [*settings.secret_dirs, *settings.files_dirs]):
        yield path, _volume_key


def fingerprint(settings: InputSettings) -> bytes:
    """The sha256 digest of every input's facts; `UNREADABLE` if any of them cannot be read."""
    h = hashlib.sha256()
    try:
        for path, wanted in _sources(settings):
            for facts in _directory_facts(path, wanted):
                h.update(facts.encode("utf-8", "surrogateescape") + b"\n")
    except (OSError, ValueError):
        return UNREADABLE
    return h.digest()


class Wake(Protocol):
    def set(self) -> None: ...


class InputsWatch:
    """Polls the inputs' fingerprint on `clock`; sets `wake` on a change (the cache's full-pass request:
    rotated inputs may change any connector)."""

    def __init__(
        self,
        settings: InputSettings,
        *,
        clock: Clock,
        wake: Wake,
        poll_seconds: float,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.wake = wake
        self.poll_seconds = poll_seconds
        self.changes = 0  # how many times a change woke the loop
        # Taken now, before the first pass reads the inputs: a change made after it is never missed.
        self._last = self._current() if self.enabled else UNREADABLE

    @property
    def enabled(self) -> bool:
        return self.poll_seconds > 0

    def _current(self) -> bytes:
        try:
            return fingerprint(self.settings)
        except Exception as exc:  # a bug here must not end the watch; no traceback: it may quote data
            log.warning("cannot fingerprint the template inputs", error=type(exc).__name__)
            return UNREADABLE

    def check(self) -> bool:
        """One poll: True (and the loop woken) if the inputs changed since the last one."""
        current = self._current()
        if current == self._last:
            return False
        self._last = current
        self.changes += 1
        log.info("template inputs changed; reconciling")
        self.wake.set()
        return True

    def run(self) -> None:
        """Poll until the clock's stop is set; returns at once when disabled."""
        if not self.enabled:
            return
        while not self.clock.wait(self.clock.stop, self.poll_seconds):
            self.check()
