"""The watcher's SIGTERM relay: the callback runs on another thread, so it may take a lock the main
thread holds when the signal lands (a handler run in the main thread would wait on it forever)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from reconciler.entrypoints.signals import relay_signals


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_sigterm_runs_the_callback_on_a_relay_thread_while_the_main_thread_holds_its_lock() -> None:
    lock = threading.Lock()
    done = threading.Event()
    ran_on: list[str] = []

    def on_signal(signum: int) -> None:
        with lock:  # a plain handler doing this in the main thread would deadlock here
            ran_on.append(threading.current_thread().name)
            done.set()

    restore = relay_signals((signal.SIGTERM,), on_signal)
    try:
        with lock:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the Python-level handler runs in here, and must return
            assert not done.is_set(), "the callback ran while the main thread held its lock"
        assert done.wait(5), "the callback never ran after the lock was released"
    finally:
        restore()
    assert ran_on == ["signal-relay"]


def test_only_the_named_signals_reach_the_callback_and_restore_puts_the_handlers_back() -> None:
    seen: list[int] = []
    usr1: list[int] = []
    before = signal.getsignal(signal.SIGTERM)
    previous_usr1 = signal.signal(signal.SIGUSR1, lambda signum, _frame: usr1.append(signum))
    try:
        restore = relay_signals((signal.SIGTERM, signal.SIGINT), seen.append)
        try:
            assert signal.getsignal(signal.SIGTERM) is not before
            os.kill(os.getpid(), signal.SIGUSR1)  # its own handler runs; its wakeup byte is not relayed
            os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the relay owns SIGINT now
            assert _wait_for(lambda: seen == [signal.SIGINT]), seen
            time.sleep(0.1)
            assert seen == [signal.SIGINT]
            assert usr1 == [signal.SIGUSR1]
        finally:
            restore()
        assert signal.getsignal(signal.SIGTERM) is before
        assert signal.set_wakeup_fd(-1) == -1, "restore left the relay's wakeup fd installed"
    finally:
        signal.signal(signal.SIGUSR1, previous_usr1)
