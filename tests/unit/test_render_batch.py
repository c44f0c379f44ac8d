"""Batched rendering (`Renderer.render_many`, `batch_program`): the same result and the same message for
every template as rendering it alone, in-process and through the jq sandbox — while the good ones share
one compile per batch, and a template that breaks its batch (compile error, runaway loop, memory) costs
its batch a re-run one by one, never another template's result."""

from __future__ import annotations

import json
import random
import time
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
    '{"name": "inf", "config": {"x": (1e308 * 10)}}',  # nan and infinite leave the batch as they are
    '{"name": "literal", "config": {"x": 1e1000}}',  # beyond ±1.8e308 but kept by tojson: jq judges it
    '{"name": "long", "config": {"x": %s}}' % ("9" * 400),
    '{"name": "max", "config": {"x": 1.7976931348623157e308, "y": "E+1000"}}',
    '{"name": "nested", "config": {"x": "a\\(1 + ("]\\(2)" | length))]"}}',
    '{"name": "c1", "config": {}}];\ndef ascii_downcase: "pwned"; def z: [1',  # reaches past its brackets
    '{"name": "c2", "config": {}} # a comment continued \\\n]; def ascii_downcase: "pwned"; def z: [1',
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

    def run_batch(self, program: str, count: int, args_json: str) -> list[list[str] | None] | None:
        self.batches.append(count)
        return self.engine.run_batch(program, count, args_json)  # type: ignore[no-any-return]


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
    left_out = [p for p in ODD if not rendering.batchable(p)]  # halt, $__loc__, the two that reach out
    assert len(left_out) == 4
    assert engine.batches[0] == BATCH_SIZE and engine.batches[-1] == len(programs) - 4 - BATCH_SIZE
    messages = [str(r) for r in batched if isinstance(r, RenderError)]
    assert len(messages) >= 6 and not any(SECRET in m for m in messages)
    assert any("jq compile error" in m for m in messages)
    # The first batch held a compile error: halving it found the template in a few compiles. Alone ran
    # the four left out, the eight a batch cannot settle (compile error, error, nan, input, infinite,
    # three numbers near or past ±1.8e308), and the rest of the smallest batch that did not compile.
    assert len(engine.batches) <= 2 * 5 and engine.runs <= 4 + 8 + 2


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
    assert "def __cr_t0: [\n1 # comment\n];\n" in text and "def __cr_t1: [\n2\n];\n" in text
    args = json.dumps({"__env": {}, "secrets": {}, "files": {}})
    assert IN_PROCESS.run_batch(text, 2, args) == [["1"], ["2"]]
    assert IN_PROCESS.run_batch(batch_program(["1", "nope("]), 2, args) is None  # it does not compile
    assert IN_PROCESS.run_batch(batch_program(["1", "error(2)"]), 2, args) == [["1"], None]
    assert rendering.batchable("halt") is False and rendering.batchable("   ") is False


GOOD_LOWER = '{"name": "v%d", "config": {"v": ("ABC" | ascii_downcase), "t": $TOPIC}}'
ESCAPES = [
    '{"name": "e", "config": {}};\ndef ascii_downcase: "pwned"',
    '{"name": "e", "config": {}}]; def ascii_downcase: "pwned"; def z: [1',
    '1]) catch null), (def ascii_downcase: "pwned"; (try ([0',
    '1] | __cr_out) catch null), (def ascii_downcase: "pwned"; (try ([0',
    '"\\(1]; def ascii_downcase: "pwned"; def z: [("',
    '{"name": "e", "config": {}} # \\\n]; def ascii_downcase: "pwned"; def z: [1',
    '{"name": "e", "config": {"v": $$$$TOPIC}}',
    '{"name": "e", "config": {}}]; def ascii_downcase: "pwned"; def z: [1 # ]',
]


@pytest.mark.parametrize("engine_name", ["in-process", "sandbox"])
def test_no_template_changes_what_another_renders(engine_name: str, sandbox: JqSandbox) -> None:
    """A template whose text closes the brackets around it would put its definitions in the scope of
    the templates after it in the batch: such a template runs alone and gets its own compile error."""
    engine = IN_PROCESS if engine_name == "in-process" else sandbox
    programs = [GOOD_LOWER % 0, *ESCAPES, GOOD_LOWER % 1]
    batched = Renderer(inputs(), engine=engine).render_many(specs(programs))
    alone = [Renderer(inputs(), engine=Alone()).render_many([s])[0] for s in specs(programs)]
    assert shown(batched) == shown(alone)
    victims = [r for r in batched if isinstance(r, DesiredConnector) and r.name.startswith("v")]
    assert [v.config["v"] for v in victims] == ["abc", "abc"]
    # The first stays inside its brackets (its batch does not compile and it runs alone); the others
    # would reach past them, or clear a variable, so they never join a batch.
    assert [rendering.batchable(p) for p in ESCAPES] == [True] + [False] * (len(ESCAPES) - 1)


@pytest.mark.parametrize(
    ("program", "batchable"),
    [
        ('{"a": "x]", "b": "\\"]"}', True),  # brackets and quotes inside strings
        ('{"a": 1} # ] [ " (', True),  # inside a comment
        ('"\\(1 + ("]\\(2)" | length))"', True),  # strings inside interpolations inside strings
        ('"\\\\(" # an escaped backslash, then a plain paren', True),
        ("$x | $ns::y", True),
        ("{a: 1}\n# a last comment without a line break", True),
        ("1]", False),
        ("(1", False),
        ("{a: (1]}", False),  # mismatched: jq's lexer refuses it too
        ('"\\(1]"', False),
        ('"unterminated', False),
        ('"\\\\"]', False),  # the string ends after the escaped backslash
        ("1 # continued \\\n]", False),  # jq 1.8 continues a comment past a backslash
        ("$$$$x", False),
        ("$ $ $ $x", False),
        ("halt_error", False),
        ("$__loc__", False),
        ("__cr_out", False),
        ("1\x00]", False),
    ],
)
def test_batchable_follows_jqs_lexer(program: str, batchable: bool) -> None:
    assert rendering.batchable(program) is batchable


def test_random_token_soups_batch_exactly_as_they_run_alone() -> None:
    """Whatever the lexer check lets into a batch parses there exactly as it does alone: the batch
    compiles iff the template compiles alone, and the template next to it keeps its own output."""
    pieces = ['"', "\\(", ")", "]", "[", "{", "}", "(", "#", "\\", "\n", ";", 'def ascii_downcase: "p";']
    pieces += ["$", "$TOPIC", "1", "|", ",", " ", '"a"', ":", "if", "then", "else", "end", ".", '"\\""']
    rng = random.Random(20261203)
    soups = {"".join(rng.choice(pieces) for _ in range(rng.randint(1, 10))) for _ in range(3000)}
    victim = GOOD_LOWER % 0
    names = rendering.variable_names(inputs())
    args = rendering.args_json(inputs())
    checked = 0
    for soup in sorted(soups):
        if not rendering.batchable(soup):
            continue
        checked += 1
        try:
            rendering._compile(rendering.wrap_program(soup, variables=names))
            alone_compiles = True
        except ValueError:
            alone_compiles = False
        answers = IN_PROCESS.run_batch(batch_program([soup, victim], variables=names), 2, args)
        assert (answers is not None) == alone_compiles, soup
        if answers is not None:
            assert answers[1] == IN_PROCESS.run(rendering.wrap_program(victim, variables=names), args)[0]
    assert checked > 100


def test_a_compiled_program_is_kept_by_its_text_whatever_the_inputs() -> None:
    """The inputs reach jq as its input document: new values (a changed Secret, another env var) render
    from the programs already compiled, and no compiled program holds an input value."""
    programs = [GOOD_LOWER % i for i in range(60)]
    first = Renderer(inputs()).render_many(specs(programs))
    misses = rendering._compile.cache_info().misses
    crowded = RenderInputs(
        env={"STAGE": "dev"} | {f"SERVICE_{i}_PORT": "tcp://10.0.0.1:80" for i in range(400)},
        variables={"TOPIC": "u"},
        secrets={"db": {"password": "rotated"}},
    )
    second = Renderer(crowded).render_many(specs(programs))
    assert rendering._compile.cache_info().misses == misses
    assert {r.config["t"] for r in first if isinstance(r, DesiredConnector)} == {"t"}
    assert {r.config["t"] for r in second if isinstance(r, DesiredConnector)} == {"u"}


def test_a_batch_past_the_deadline_is_not_tried_again_for_the_same_inputs() -> None:
    programs = [GOOD % (i, i) for i in range(6)]
    programs[2] = "def f: f; f"
    with JqSandbox(deadline_s=0.5) as box:
        engine = Counting(box)
        renderer = Renderer(inputs(), engine=engine)
        renderer.render_many(specs(programs))
        starts, batches = box.starts, len(engine.batches)
        started = time.monotonic()
        results = renderer.render_many(specs(programs))
        elapsed = time.monotonic() - started
    assert elapsed < 0.4  # neither the batch nor the runaway template ran again
    assert box.starts == starts and len(engine.batches) == batches + 1
    assert "did not finish within 0.5 s" in str(results[2])
    assert [r.name for r in results if isinstance(r, DesiredConnector)] == [f"c{i}" for i in (0, 1, 3, 4, 5)]
