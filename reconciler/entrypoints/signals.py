"""SIGTERM/SIGINT delivered to an ordinary thread, where taking a lock is safe.

Edge. CPython runs a Python signal handler in the main thread between two bytecodes, and that can be
inside `threading.Event.wait`, while the main thread holds the event's lock: a handler that sets that
event then waits forever on a lock its own thread holds. The watcher hung on SIGTERM exactly so (its
loop waits on `cache.dirty` in 50 ms slices, so the lock is taken twenty times a second). Here the
Python handler does nothing; the interpreter's C handler writes the signal number into a socket
(`signal.set_wakeup_fd`), and a relay thread that reads it calls `on_signal`.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Collection
from types import FrameType


def _noop(_signum: int, _frame: FrameType | None) -> None:
    """A Python-level handler must stay installed: without one the default action (exit) runs."""


def relay_signals(signums: Collection[int], on_signal: Callable[[int], None]) -> Callable[[], None]:
    """From the main thread: call `on_signal(signum)` on a relay thread for each of `signums` received.
    Returns a function that puts the previous handlers and wakeup fd back."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)  # set_wakeup_fd requires it; a full buffer drops the byte, not the process
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous = {signum: signal.signal(signum, _noop) for signum in signums}
    wanted = frozenset(signums)

    def relay() -> None:
        # This thread holds both ends: if the caller drops `restore`, the writer must not be collected
        # (its fd closed under the interpreter's C handler, which then writes into a dead fd).
        _keep = writer
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in wanted:
                    on_signal(signum)

    thread = threading.Thread(target=relay, name="signal-relay", daemon=True)
    thread.start()

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_fd)
        writer.close()  # the relay's recv sees end of stream and returns
        thread.join(timeout=5)
        reader.close()

    return restore
