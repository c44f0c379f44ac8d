"""Process plumbing shared by the harnesses: loopback ports, readiness polling, start and stop by group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


class KitError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_ok(url: str, *, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:  # loopback only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def spawn(cmd: list[str], *, log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start in a session of its own: stop() signals the whole group, and Ctrl-C in a terminal does not."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )


def wait_ready(
    what: str, ready: Callable[[], Any], *, alive: Callable[[], bool], log: Path, timeout: float
) -> None:
    """Poll `ready` until true; KitError with the log's tail if the process dies or the time runs out."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception as exc:  # retried until the deadline, reported below
            last = exc
        if not alive():
            break
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise KitError(f"{what} did not become ready in {timeout:.0f} s ({last!r}); log tail:\n{tail}")


def terminate(pid: int, process: subprocess.Popen[bytes] | None = None, *, grace: float = 20) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds; reap it when it is our child."""
    if not pid_alive(pid):
        return
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return
        time.sleep(0.2)
    if pid_alive(pid) and (process is None or process.poll() is None):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    if process is not None:
        process.wait(timeout=30)
