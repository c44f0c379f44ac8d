"""Batched rendering (`Renderer.render_many`, `batch_program`): the same result and the same message for
every template as rendering it alone, in-process and through the jq sandbox — while the good ones share
one compile per batch, and a template that breaks its batch (compile error, runaway loop, memory) costs
its batch a re-run one by one, never another template's result."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from reconciler.core import rendering
from reconciler.core.rendering import BATCH_SIZE, IN_PROCESS, Renderer, batch_program
from reconciler.errors import RenderError
from reconciler.jq_sandbox import JqSandbox
from reconciler.model import ConnectorSpec, DesiredConnector, RenderInputs, SourceRef

SECRET = "hunter2-batch-secret"
GOOD = '{"name": "c%d", "config": {"connector.class": "X", "topic": ($TOPIC + "-%d"), "env": env.STAGE}}'
ODD = [
    '{"name": "big", "config": {"n": 123456789012345678901234567890}}',
    '{"name": "bad" "config": {}}',  # a compile error: its batch compiles again one by one
    'error("broke with " + $secrets.db.password)',
    '{"name": "nan", "config": {"x": nan}}',
    '{"name": "two", "config": {}}, {"name": "three", "config": {}}',
    "empty",
    'halt_error("stopped")',
    '{"name": "loc", "config": {"line": ($__loc__.line | tostring)}}',
    "input",
    '{"name": "multi\nline", "config": {}}',
    '{"name": "c0", "config": {"dup": "1"}} # a trailing comment',
    '{"name": "enabled", "state": "paused", "cluster": "other", "config": {"a": [1, {"b": true}]}}',
    '"a string"',
    'def f: 1; {name: "deff", config: {v: f}}',
    '{"name": "secretive", "config": {"connection.password": $secrets.db.password}}',
]


def inputs() -> RenderInputs:
    return RenderInputs(
        env={"STAGE": "prod"},
        variables={"TOPIC": "t"},
        secrets={"db": {"password": SECRET}},
        secret_values=frozenset({SECRET}),
    )


def specs(programs: Sequence[str]) -> list[ConnectorSpec]:
    return [ConnectorSpec(SourceRef(f"ns/cm{i}", "k.json"), p, True) for i, p in enumerate(programs)]


def shown(results: Sequence[DesiredConnector | RenderError]) -> list[Any]:
    return [f"error: {r}" if isinstance(r, RenderError) else r for r in results]


class Counting:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.runs = 0
        self.batches: list[int] = []

    def run(self, program: str, args_json: str) -> list[Any]:
        self.runs += 1
        return self.engine.run(program, args_json)  # type: ignore[no-any-return]

    def run_batch(self, programs: Sequence[str], args_json: str) -> list[list[str] | None]:
        self.batches.append(len(programs))
        return self.engine.run_batch(programs, args_json)  # type: ignore[no-any-return]


class Alone:
    """An engine without `run_batch`: the reference, every template alone."""

    def run(self, program: str, args_json: str) -> list[Any]:
        return IN_PROCESS.run(program, args_json)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[JqSandbox]:
    with JqSandbox(deadline_s=2.0) as box:
        yield box


@pytest.mark.parametrize("engine_name", ["in-process", "sandbox"])
def test_each_template_gets_exactly_what_it_gets_alone(engine_name: str, sandbox: JqSandbox) -> None:
    programs = [GOOD % (i, i) for i in range(70)]
    programs[10:10] = ODD  # odd ones inside the first batch, good ones around and after
    engine = Counting(IN_PROCESS if engine_name == "in-process" else sandbox)
    batched = Renderer(inputs(), engine=engine).render_many(specs(programs))
    alone = [Renderer(inputs(), engine=Alone()).render_many([s])[0] for s in specs(programs)]
    assert shown(batched) == shown(alone)
    assert engine.batches == [BATCH_SIZE, len(programs) - 2 - BATCH_SIZE]  # halt and $__loc__ left out
    messages = [str(r) for r in batched if isinstance(r, RenderError)]
    assert len(messages) >= 6 and not any(SECRET in m for m in messages)
    assert any("jq compile error" in m for m in messages)
    # The first batch held a compile error: its templates ran one by one; the second batch did not.
    assert engine.runs <= BATCH_SIZE + 2 + 5


def test_good_templates_share_one_compile_per_batch() -> None:
    engine = Counting(IN_PROCESS)
    results = Renderer(inputs(), engine=engine).render_many(specs([GOOD % (i, i) for i in range(120)]))
    assert engine.batches == [50, 50, 20] and engine.runs == 0
    assert [r.name for r in results if isinstance(r, DesiredConnector)] == [f"c{i}" for i in range(120)]


def test_a_runaway_template_costs_its_batch_a_rerun_not_the_others_their_result() -> None:
    programs = [GOOD % (i, i) for i in range(8)]
    programs[3] = "def f: f; f"  # never ends
    with JqSandbox(deadline_s=0.5) as box:
        engine = Counting(box)
        results = Renderer(inputs(), engine=engine).render_many(specs(programs))
    assert engine.batches == [8]
    assert "did not finish within 0.5 s" in str(results[3])
    assert [r.name for r in results if isinstance(r, DesiredConnector)] == [
        f"c{i}" for i in range(8) if i != 3
    ]


def test_a_batch_over_the_output_cap_sends_only_the_large_one_alone() -> None:
    big = '{"name": "big", "config": {"x": ([range(2000)] | map(tostring) | join(","))}}'
    programs = [GOOD % (0, 0), big, GOOD % (2, 2)]
    with JqSandbox(max_output_bytes=5000) as box:
        engine = Counting(box)
        results = Renderer(inputs(), engine=engine, max_config_bytes=5000).render_many(specs(programs))
    assert engine.runs == 1  # only the large one ran again, alone, to get its own message
    assert "more than 5000 bytes" in str(results[1]) or "5000" in str(results[1])
    assert isinstance(results[0], DesiredConnector) and isinstance(results[2], DesiredConnector)


def test_the_batch_program_keeps_each_template_on_its_own_lines() -> None:
    text = batch_program(["1 # comment", "2"])
    assert "def __cr_t0:\n1 # comment\n;\n" in text and "def __cr_t1:\n2\n;\n" in text
    args = json.dumps({"__env": {}, "secrets": {}, "files": {}})
    assert IN_PROCESS.run_batch(["1 # comment", "2"], args) == [["1"], ["2"]]
    assert IN_PROCESS.run_batch(["1", "nope("], args) == [None, None]  # the whole failed to compile
    assert rendering.batchable("halt") is False and rendering.batchable("   ") is False
