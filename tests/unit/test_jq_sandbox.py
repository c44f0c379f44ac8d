"""The jq sandbox through its real child process: same answers as in-process, and every limit ends in a
one-line RenderError from which the next call recovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import jq_sandbox
from reconciler.core import rendering
from reconciler.core.rendering import IN_PROCESS, JqError, args_json, evaluate, variable_names, wrap_program
from reconciler.errors import RenderError
from reconciler.jq_sandbox import JqSandbox
from reconciler.model import ConnectorSpec, RenderInputs, SourceRef

DEADLINE_S = 0.5
MEMORY_BYTES = 128 * 2**20
SECRET = "sandbox-Secret-7731"
INPUTS = RenderInputs(
    env={"STAGE": "dev", "DB_PASSWORD": SECRET},
    variables={"TOPIC": "orders"},
    secrets={"db": {"password": SECRET}},
    files={"common": {"bootstrap": "kafka:9092"}},
    secret_values=frozenset({SECRET}),
)
ARGS = args_json(INPUTS)
VARIABLES = variable_names(INPUTS)
TEMPLATE = '{"name": "c1", "config": {"topics": "\\($TOPIC)-\\(env.STAGE)", "bs": $files.common.bootstrap}}'
HOSTILE = {
    "endless recursion": "def f: f; f",
    "range collected": "[range(1e12)]",
    "limit of repeat": "[limit(1e9; repeat(1))]",
    "huge string": '"x" * 1e9',
    "deep recursion": "def r: [r]; r",
    "huge splits": '[("ab" * 2e7) | splits("a")]',
}


@pytest.fixture
def sandbox() -> Iterator[JqSandbox]:
    with JqSandbox(deadline_s=DEADLINE_S, memory_bytes=MEMORY_BYTES) as engine:
        yield engine


def timed_failure(program: str, engine: JqSandbox) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        evaluate(program, INPUTS, engine=engine)
    return str(caught.value), time.monotonic() - started


def gone(pid: int) -> bool:
    """Neither running nor a zombie: reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_answers_equal_in_process(sandbox: JqSandbox) -> None:
    programs = [
        TEMPLATE,
        '{"name": "c2", "config": {"pw": env.DB_PASSWORD, "vol": $secrets.db.password, "n": 123456789012345678901234567890}}',
        '{"name": "é", "config": {"u": "snow ☃ \\u0000 \\"q\\""}}',
        "1, 2, 3",
    ]
    for program in programs:
        wrapped = wrap_program(program, variables=VARIABLES)
        assert sandbox.run(wrapped, ARGS) == IN_PROCESS.run(wrapped, ARGS)
        assert evaluate(program, INPUTS, engine=sandbox) == evaluate(program, INPUTS)


def test_render_connector_through_the_sandbox(sandbox: JqSandbox) -> None:
    spec = ConnectorSpec(SourceRef("ns/cm", "c.json"), TEMPLATE, True)
    assert rendering.render_connector(spec, inputs=INPUTS, engine=sandbox) == rendering.render_connector(
        spec, inputs=INPUTS
    )


def test_compile_error_is_jqs_own(sandbox: JqSandbox) -> None:
    wrapped = wrap_program("{a: }")
    with pytest.raises(JqError) as in_sandbox:
        sandbox.run(wrapped, ARGS)
    with pytest.raises(JqError) as in_process:
        IN_PROCESS.run(wrapped, ARGS)
    assert in_sandbox.value.compile and str(in_sandbox.value) == str(in_process.value)
    assert "syntax error" in str(in_sandbox.value)


def test_runtime_error_is_jqs_own(sandbox: JqSandbox) -> None:
    with pytest.raises(JqError) as caught:
        sandbox.run(wrap_program('error("boom \\($TOPIC)")', variables=VARIABLES), ARGS)
    assert not caught.value.compile and str(caught.value) == "boom orders"
    with pytest.raises(RenderError, match=r"^jq error: boom orders$"):
        evaluate('error("boom \\($TOPIC)")', INPUTS, engine=sandbox)


@pytest.mark.parametrize("program", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_program_is_stopped_and_the_next_call_works(program: str, sandbox: JqSandbox) -> None:
    sandbox.start()
    first = sandbox.pid
    message, elapsed = timed_failure(program, sandbox)
    assert elapsed < DEADLINE_S + 1
    assert message in (
        f"the template did not finish within {DEADLINE_S:g} s (a loop that never ends?)",
        "the template needed more than 128 MiB of memory",
    )
    assert first is not None and gone(first) and sandbox.pid is None
    assert evaluate(TEMPLATE, INPUTS, engine=sandbox) == evaluate(TEMPLATE, INPUTS)
    assert sandbox.starts == 2


def test_the_deadline_and_the_memory_cap_are_named() -> None:
    with JqSandbox(deadline_s=0.3, memory_bytes=64 * 2**20) as engine:
        assert timed_failure("def f: f; f", engine)[0] == (
            "the template did not finish within 0.3 s (a loop that never ends?)"
        )
        assert timed_failure('"x" * 1e9', engine)[0] == "the template needed more than 64 MiB of memory"


def test_output_size_cap_keeps_the_child() -> None:
    with JqSandbox(deadline_s=DEADLINE_S, max_output_bytes=1000) as engine:
        message, _ = timed_failure('{"name": "big", "config": {"x": ("y" * 2000)}}', engine)
        assert message == "the output is more than 1000 bytes; a connector config may be at most 1000"
        assert evaluate('{"x": ("y" * 900)}', INPUTS, engine=engine) == [{"x": "y" * 900}]
        assert engine.starts == 1


@pytest.mark.parametrize("program", ["def f: f; f", '"x" * 1e9'], ids=["deadline", "memory"])
def test_a_failure_is_remembered_for_the_same_program_and_inputs(program: str, sandbox: JqSandbox) -> None:
    first, _ = timed_failure(program, sandbox)
    starts = sandbox.starts
    again, elapsed = timed_failure(program, sandbox)
    assert again == first and elapsed < 0.1
    assert sandbox.starts == starts and sandbox.pid is None  # nothing ran: no child was even started
    other = RenderInputs(env={"STAGE": "prod"})
    with pytest.raises(RenderError):  # other inputs: the program runs again
        evaluate(program, other, engine=sandbox)
    assert sandbox.starts == starts + 1


def test_a_program_starved_of_cpu_is_not_remembered(
    sandbox: JqSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jq_sandbox._Child, "cpu_seconds", lambda self: 1.0)  # as if it never ran
    timed_failure("def f: f; f", sandbox)
    _, elapsed = timed_failure("def f: f; f", sandbox)
    assert elapsed >= DEADLINE_S and sandbox.starts == 2


def test_the_inputs_cross_the_pipe_once_per_child_and_change(sandbox: JqSandbox) -> None:
    for i in range(20):
        assert evaluate(f'{{"i": {i}, "t": $TOPIC}}', INPUTS, arguments=ARGS, engine=sandbox) == [
            {"i": i, "t": "orders"}
        ]
    assert sandbox.args_sent == 1
    other = args_json(RenderInputs(variables={"TOPIC": "payments"}))
    assert evaluate('{"t": $TOPIC}', INPUTS, arguments=other, engine=sandbox) == [{"t": "payments"}]
    equal_copy = other[:1] + other[1:]  # another object with the same text: nothing to send
    assert evaluate('{"t": $TOPIC}', INPUTS, arguments=equal_copy, engine=sandbox) == [{"t": "payments"}]
    assert sandbox.args_sent == 2
    assert evaluate('{"t": $TOPIC}', INPUTS, engine=sandbox) == [{"t": "orders"}]
    assert sandbox.args_sent == 3
    timed_failure("def f: f; f", sandbox)  # the same inputs, but the child that had them is gone
    assert sandbox.args_sent == 3
    assert evaluate('{"t": $TOPIC}', INPUTS, engine=sandbox) == [{"t": "orders"}]
    assert sandbox.args_sent == 4


def test_close_kills_the_child_and_leaves_no_zombie() -> None:
    with JqSandbox() as engine:
        engine.start()
        pid = engine.pid
        assert pid is not None and not gone(pid)
        engine.close()
        assert engine.pid is None and gone(pid)
        assert evaluate(TEMPLATE, INPUTS, engine=engine)  # usable again: a new child
        second = engine.pid
    assert second is not None and second != pid and gone(second)


def test_a_child_killed_while_idle_is_replaced_without_blaming_the_program(sandbox: JqSandbox) -> None:
    sandbox.start()
    pid = sandbox.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    assert evaluate(TEMPLATE, INPUTS, engine=sandbox) == evaluate(TEMPLATE, INPUTS)
    assert sandbox.starts == 2


def test_a_child_killed_from_outside_mid_run_is_not_remembered(sandbox: JqSandbox) -> None:
    sandbox.start()
    pid = sandbox.pid
    assert pid is not None
    killer = threading.Timer(0.1, os.kill, (pid, signal.SIGKILL))
    killer.start()
    message, elapsed = timed_failure("def f: f; f", sandbox)
    killer.join()
    assert message == "the template needed more than 128 MiB of memory" and elapsed < DEADLINE_S
    message, elapsed = timed_failure("def f: f; f", sandbox)  # it runs again, into the deadline
    assert message.startswith("the template did not finish") and elapsed >= DEADLINE_S


def test_the_childs_stderr_never_reaches_ours(sandbox: JqSandbox, capfd: pytest.CaptureFixture[str]) -> None:
    program = '$secrets.db.password | debug | stderr | debug("msg \\(.)") | {"name": "x", "config": {}}'
    assert evaluate(program, INPUTS, engine=sandbox) == [{"name": "x", "config": {}}]
    timed_failure('"x" * 1e9', sandbox)  # jq's out-of-memory abort prints too
    out, err = capfd.readouterr()
    assert SECRET not in out + err and err == ""


def test_the_child_does_not_inherit_our_environment(
    sandbox: JqSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_TEST_TOKEN", SECRET)
    sandbox.start()
    environ = Path(f"/proc/{sandbox.pid}/environ")
    if not environ.exists():
        pytest.skip("no /proc")
    assert SECRET.encode() not in environ.read_bytes()


def test_threads_share_one_sandbox(sandbox: JqSandbox) -> None:
    results: dict[int, object] = {}

    def render(i: int) -> None:
        results[i] = evaluate(f'{{"i": {i}}}', INPUTS, arguments=ARGS, engine=sandbox)

    threads = [threading.Thread(target=render, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: [{"i": i}] for i in range(8)}


def worker(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler.jq_worker", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def test_the_worker_exits_when_its_parent_closes_the_pipe() -> None:
    child = worker(str(MEMORY_BYTES), "1000", "10")
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.read(4)  # the "ready" frame
    child.stdin.close()
    assert child.wait(timeout=10) == 0
    child.stdout.close()


def test_the_workers_cpu_backstop_ends_an_orphaned_run() -> None:
    child = worker(str(MEMORY_BYTES), "1000", "1")
    assert child.stdout is not None and child.stdin is not None
    child.stdout.read(4)
    child.stdin.write(jq_sandbox._frame({"program": "def f: f; f", "args": "{}"}))
    child.stdin.flush()
    try:
        assert child.wait(timeout=30) == -signal.SIGXCPU
    finally:
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()


def test_a_launched_child_loads_meanwhile_and_serves_the_first_run() -> None:
    with JqSandbox() as box:
        box.launch()
        launched = box._launched
        assert launched is not None and box.pid is None  # started, not yet waited for
        assert box.run(wrap_program("1 + 1"), args_json(RenderInputs())) == [["2"]]
        assert box.starts == 1 and box.pid == launched[0].pid
    with JqSandbox() as box:
        box.launch()
    assert box._launched is None  # closing kills a child that was launched and never used
