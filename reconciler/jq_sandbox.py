"""I/O edge: runs jq programs in a child process with a deadline, a memory cap and an output size cap.

libjq cannot be interrupted in-process: `def f: f; f` spins forever and `[range(1e9)]` aborts the whole
process once malloc fails. `JqSandbox` (a `JqEngine`) hands each program to a persistent child
(`reconciler.jq_worker`) and waits at most `deadline_s` for the answer; past it, or when the child dies of
its RLIMIT_AS, the child is killed and reaped, the call raises a one-line RenderError and the next call
gets a fresh child. The inputs (`args_json`, the same for a whole pass) cross the pipe only when they
change; the child hands them to every program as its input document. A failure that is the program's own
(deadline, memory, output size) is remembered, so the same program with the same inputs fails at once on
the next pass instead of burning the deadline again; so is a batch (`run_batch`) that one of its templates
stopped, whose templates then run alone at once.

Messages name the limit, never the program or its inputs (they hold secret values).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict
from types import TracebackType
from typing import Any

from reconciler.core.rendering import JqError
from reconciler.errors import RenderError

_HEADER_BYTES = 4  # reconciler.jq_worker.HEADER_BYTES; not imported: that module imports libjq
_EXIT_OUT_OF_MEMORY = 3  # reconciler.jq_worker.EXIT_OUT_OF_MEMORY
# The child is ready in ~0.2 s on an idle machine (mostly importing `reconciler`); a busy one takes longer.
_START_TIMEOUT_S = 30.0
_REMEMBERED_FAILURES = 1024
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Deaths that the program causes: jq's abort when malloc fails, a C stack overflow, the CPU backstop.
_PROGRAM_SIGNALS = frozenset({signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGXCPU})
# The child needs the interpreter's own settings, nothing else: above all, none of our secrets.
_CHILD_ENV_PREFIXES = ("PYTHON", "LC_")
_CHILD_ENV_NAMES = frozenset({"LANG", "LD_LIBRARY_PATH", "TZ"})


class _LimitHit(Exception):
    """A limit stopped the program; `remember` when it is the program's doing, not the machine's."""

    def __init__(self, message: str, *, remember: bool) -> None:
        super().__init__(message)
        self.remember = remember


def _child_env(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith(_CHILD_ENV_PREFIXES) or k in _CHILD_ENV_NAMES}


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _frame(message: dict[str, str]) -> bytes:
    # ASCII: a lone surrogate in a program must reach libjq (and fail there), not break the frame.
    body = json.dumps(message, separators=(",", ":")).encode("ascii")
    return len(body).to_bytes(_HEADER_BYTES, "big") + body


def _open_stat(pid: int) -> int | None:
    """/proc/PID/stat, kept open: one pread per request then reads the child's CPU clock (Linux only)."""
    try:
        return os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None


def _kill(proc: subprocess.Popen[bytes], stat: int | None) -> None:
    """SIGKILL and reap: no zombie, no open pipe or file left behind."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()
    if stat is not None:
        os.close(stat)


class _Child:
    """One live worker process and the pipes to it."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # jq's `debug` and `stderr` would print template values (secrets)
            close_fds=True,
            start_new_session=True,  # our terminal's signals never reach it, its kill never reaches us
            env=_child_env(dict(os.environ)),
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.pid = self.proc.pid
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._out, False)
        self._poll = select.poll()
        self._poll.register(self._out, select.POLLIN)
        self.has_args = False
        self._stat = _open_stat(self.pid)
        self._finalizer = weakref.finalize(self, _kill, self.proc, self._stat)

    def cpu_seconds(self) -> float | None:
        """The CPU time the child has used so far, or None when it cannot be read."""
        if self._stat is None:
            return None
        try:
            fields = os.pread(self._stat, 1024, 0).rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        except (OSError, ValueError, IndexError):
            return None

    def send(self, data: bytes) -> bool:
        """False when the child is gone. The child reads every request whole before it runs it."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._in, view) :]
        except BrokenPipeError:
            return False
        return True

    def receive(self, *, deadline: float) -> dict[str, Any] | None:
        """The next answer; None at EOF (the child died); TimeoutError once `deadline` (monotonic) passes."""
        buffer = bytearray()
        needed = _HEADER_BYTES
        while len(buffer) < needed:
            # Read first, wait only when nothing is there: a quick answer is often in the pipe already.
            try:
                chunk = os.read(self._out, max(needed - len(buffer), 65536))
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._poll.poll(math.ceil(remaining * 1000)):
                    raise TimeoutError from None
                continue
            if not chunk:
                return None
            buffer += chunk
            if needed == _HEADER_BYTES and len(buffer) >= _HEADER_BYTES:
                needed += int.from_bytes(buffer[:_HEADER_BYTES], "big")
        answer: dict[str, Any] = json.loads(buffer[_HEADER_BYTES:needed])
        return answer

    def returncode(self) -> int:
        """Reap a child that closed its end: it is exiting, but may not have finished yet."""
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait()

    def kill(self) -> None:
        self._finalizer()


class JqSandbox:
    """A `JqEngine` whose programs run in a child process under a deadline, a memory cap and an output cap.

    The child starts on the first `run` (or `start`) and serves every later call; `close` (or leaving the
    `with` block) kills it. Safe to share between threads: one program runs at a time."""

    def __init__(
        self, *, deadline_s: float = 2.0, memory_bytes: int = 256 * 2**20, max_output_bytes: int = 1_000_000
    ) -> None:
        self.deadline_s = deadline_s
        self.memory_bytes = memory_bytes
        self.max_output_bytes = max_output_bytes
        self.args_sent = 0  # how many times the inputs crossed the pipe (once per child and change)
        self.starts = 0  # children started so far
        self.start_seconds = 0.0  # how long the latest child took until it was ready
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._launched: tuple[_Child, float] | None = None  # started by `launch`, not yet ready
        self._args: str | None = None
        self._args_digest = b""
        self._failures: OrderedDict[bytes, str] = OrderedDict()
        self._failed_batches: OrderedDict[bytes, None] = OrderedDict()
        # The CPU backstop only ends a child whose parent died mid-run; the deadline is what normally acts.
        cpu_backstop = max(10, math.ceil(deadline_s * 5))
        self._argv = [
            sys.executable,
            "-m",
            "reconciler.jq_worker",
            str(memory_bytes),
            str(max_output_bytes),
            str(cpu_backstop),
        ]

    @property
    def pid(self) -> int | None:
        """The live child's process id, or None when there is none (yet, or after a limit or `close`)."""
        return self._child.pid if self._child is not None else None

    def __enter__(self) -> JqSandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill the child (if any) and reap it. The sandbox stays usable: the next `run` starts another."""
        with self._lock:
            self._discard_child()

    def start(self) -> None:
        """Start the child now rather than on the first `run`; RenderError when it cannot start."""
        with self._lock:
            self._live_child()

    def run(self, program: str, args_json: str) -> list[Any]:
        with self._lock:
            key = self._failure_key(program, args_json)
            if (known := self._failures.get(key)) is not None:
                self._failures.move_to_end(key)
                raise RenderError(known)
            try:
                return self._run(program, args_json)
            except _LimitHit as hit:
                if hit.remember:
                    self._remember(key, str(hit))
                raise RenderError(str(hit)) from None

    def run_batch(self, program: str, count: int, args_json: str) -> list[list[str] | None] | None:
        """`InProcessJq.run_batch` in the child, under the same deadline and memory cap as one template.
        Whatever stops the batch — a limit, the deadline, the child's death — sends every template of
        it to run alone, where a limit is pinned on the template that hits it. A batch stopped by the
        deadline or the memory cap is remembered with the inputs, so the next pass sends it alone at once
        instead of burning the deadline again."""
        with self._lock:
            key = self._failure_key(program, args_json)
            if key in self._failed_batches:
                self._failed_batches.move_to_end(key)
                return [None] * count
            cpu_before: float | None = None
            try:
                child = self._sent_request({"batch": program, "count": count}, args_json)
                cpu_before = child.cpu_seconds()
                answer = child.receive(deadline=time.monotonic() + self.deadline_s)
            except TimeoutError:
                hit = self._past_deadline(child, cpu_before=cpu_before)
                self._remember_batch(key, remember=hit.remember)
                return [None] * count
            except RenderError:  # the child could not start or took no request: nothing is learnt
                self._discard_child()
                return [None] * count
            if answer is None:
                self._remember_batch(key, remember=self._died(child).remember)
                return [None] * count
            if answer.get("limit") == "memory":
                self._discard_child()  # it exits after answering
                self._remember_batch(key, remember=True)
                return [None] * count
            if "batch" not in answer:  # another limit or a failure: each template finds its own alone
                return [None] * count
            results = answer["batch"]
            if results is None:
                return None
            if not isinstance(results, list) or len(results) != count:
                return [None] * count
            return [r if isinstance(r, list) else None for r in results]

    def _remember_batch(self, key: bytes, *, remember: bool) -> None:
        if remember:
            self._failed_batches[key] = None
            if len(self._failed_batches) > _REMEMBERED_FAILURES:
                self._failed_batches.popitem(last=False)

    def _failure_key(self, program: str, args_json: str) -> bytes:
        # Digests, not the texts: remembered failures must not keep a thousand copies of the inputs alive.
        if args_json is not self._args and args_json != self._args:
            self._args = args_json
            self._args_digest = _digest(args_json)
            if self._child is not None:
                self._child.has_args = False
        return self._args_digest + _digest(program)

    def _remember(self, key: bytes, message: str) -> None:
        self._failures[key] = message
        if len(self._failures) > _REMEMBERED_FAILURES:
            self._failures.popitem(last=False)

    def _run(self, program: str, args_json: str) -> list[Any]:
        child = self._sent(program, args_json)
        cpu_before = child.cpu_seconds()
        try:
            answer = child.receive(deadline=time.monotonic() + self.deadline_s)
        except TimeoutError:
            raise self._past_deadline(child, cpu_before=cpu_before) from None
        if answer is None:
            raise self._died(child)
        return self._outputs(answer)

    def _sent(self, program: str, args_json: str) -> _Child:
        return self._sent_request({"program": program}, args_json)

    def _sent_request(self, request: dict[str, Any], args_json: str) -> _Child:
        """The live child, holding the request. One found dead while idle (killed by someone else: no
        program of ours was running) is replaced, not blamed on this program."""
        for _ in range(2):
            child = self._live_child()
            with_args = not child.has_args
            if with_args:
                request = {**request, "args": args_json}
            if child.send(_frame(request)):
                if with_args:
                    self.args_sent += 1
                    child.has_args = True
                return child
            self._discard_child()
        raise RenderError("the jq sandbox process exited before it took the program")

    def _outputs(self, answer: dict[str, Any]) -> list[Any]:
        if "outputs" in answer:
            outputs: list[Any] = answer["outputs"]
            return outputs
        if "jq" in answer:
            raise JqError(answer["jq"], compile=bool(answer.get("compile")))
        if "failed" in answer:  # not jq's error, not a limit: a bug (ours or libjq's) worth a plain report
            raise RenderError(f"the jq sandbox could not run the program ({answer['failed']})")
        limit = answer.get("limit")
        if limit == "output":
            raise _LimitHit(
                f"the output is more than {self.max_output_bytes} bytes; "
                f"a connector config may be at most {self.max_output_bytes}",
                remember=True,
            )
        if limit == "depth":
            raise _LimitHit("the output is nested too deeply", remember=True)
        self._discard_child()  # "memory": the child exits after answering
        raise _LimitHit(self._memory_message(), remember=limit == "memory")

    def _past_deadline(self, child: _Child, *, cpu_before: float | None) -> _LimitHit:
        cpu_after = child.cpu_seconds()
        self._discard_child()
        # Remembered only when the program had the CPU for at least a quarter of the deadline: one that a
        # busy machine starved gets another chance on the next pass instead of failing until we restart.
        used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        return _LimitHit(
            f"the template did not finish within {self.deadline_s:g} s (a loop that never ends?)",
            remember=used is None or used >= self.deadline_s / 4,
        )

    def _died(self, child: _Child) -> _LimitHit:
        code = child.returncode()
        self._discard_child()
        by_program = code == _EXIT_OUT_OF_MEMORY or (code < 0 and -code in _PROGRAM_SIGNALS)
        return _LimitHit(self._memory_message(), remember=by_program)

    def _memory_message(self) -> str:
        return f"the template needed more than {self.memory_bytes / 2**20:g} MiB of memory"

    def launch(self) -> None:
        """Start the child without waiting for it: it loads while the caller reads its inputs, and the
        first `run` waits only for what is left of its start. A failure to start shows at that `run`."""
        with self._lock:
            if self._child is None and self._launched is None:
                with contextlib.suppress(OSError):
                    self._launched = (_Child(self._argv), time.monotonic())

    def _live_child(self) -> _Child:
        if self._child is None:
            self._child = self._spawn()
        return self._child

    def _spawn(self) -> _Child:
        launched, self._launched = self._launched, None
        started = launched[1] if launched is not None else time.monotonic()
        try:
            child = launched[0] if launched is not None else _Child(self._argv)
        except OSError as exc:
            raise RenderError(
                f"the jq sandbox could not start: {exc.strerror or type(exc).__name__}"
            ) from None
        try:
            ready = child.receive(deadline=started + _START_TIMEOUT_S)
        except TimeoutError:
            ready = None
        if ready is None or not ready.get("ready"):
            child.kill()
            raise RenderError(f"the jq sandbox did not start (exit status {child.proc.returncode})")
        self.starts += 1
        self.start_seconds = time.monotonic() - started
        return child

    def _discard_child(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None
        if self._launched is not None:
            self._launched[0].kill()
            self._launched = None
