"""jq programs -> desired connectors.

Pure: the environment, properties variables and mounted files arrive as `RenderInputs`; the process
environment is never read. jq's own `env` and `$ENV` are shadowed by a prelude so a template sees exactly
`inputs.env` (which the edge may have filtered through an allow-list). The program itself runs in a
`JqEngine`: `InProcessJq` here (libjq in this process), or the edge's sandbox process, which adds the
deadline and the memory cap libjq cannot enforce in-process.

What a template can use:
    env.NAME, $ENV.NAME            environment variables (undefined -> null)
    $SCHEMA_REGISTRY_URL           one variable per key of the mounted *.properties files
    $secrets.VOLUME.KEY            files of mounted Secret volumes (values are secret)
    $files.VOLUME.KEY              files of mounted ConfigMap volumes
It must yield one object: {"name": str, "config": {...}, "state"?: running|paused|stopped, "cluster"?: str}.

The inputs reach jq once per run as its input document (`args_json`, parsed by libjq), never as compiled-in
arguments: a compiled program holds only its own text, so one serves every pass whatever the inputs, and
its size does not grow with the environment. The prelude binds `$NAME` for the variables the program
mentions (a compile error for any other, as jq gives for an unknown variable) and turns `.` back to null.

Every output leaves jq as `tojson` text, so numbers keep the literal digits jq read
(123456789012345678901234567890 stays exact; libjq's conversion to a C double would round it).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import jq

from reconciler.core.normalize import normalize_config
from reconciler.core.redaction import Redactor
from reconciler.errors import RenderError
from reconciler.model import (
    DEFAULT_CLUSTER,
    AutoRestart,
    ConnectorSpec,
    DesiredConnector,
    DesiredState,
    RenderInputs,
)

# Kafka's config topic takes records up to ~1 MB (max.message.bytes): a larger config cannot be stored.
MAX_CONFIG_BYTES = 1_000_000
_NONFINITE = "__connect_reconciler_nonfinite__"
_NONFINITE_MESSAGE = "the output contains nan, infinite or a number beyond ±1.8e308, which JSON cannot carry"
_NOT_ALLOWED = "is not allowed in a template (a template reads env, $VARS, $secrets and $files, no input)"
# jq's BINDING token: what may follow `$` (`$__loc__` lexes as a token of its own).
_VARIABLE = r"(?:[a-zA-Z_][a-zA-Z_0-9]*::)*[a-zA-Z_][a-zA-Z_0-9]*"
_VARIABLE_NAME = re.compile(_VARIABLE + r"\Z")
_REFERENCE = re.compile(r"\$(" + _VARIABLE + ")")
_RESERVED = frozenset({"__env", "secrets", "files", "ENV", "__loc__"})
# The program runs inside `[ ... ]` on its own lines, so jq's line numbers are off by exactly one. An empty
# line follows it: jq 1.8 continues a comment past a backslash at the end of its line, and a program whose
# last line is such a comment would otherwise swallow what follows.
_POSTLUDE = (
    f'\n\n] | if any(.[] | ..; type == "number" and (isnan or isinfinite)) then error("{_NONFINITE}") '
    "else map(tojson) end"
)
_ALLOWED_FIELDS = frozenset({"name", "config", "state", "cluster", "autoRestart"})
_LINE = re.compile(r"at <top-level>, line (\d+)(, column \d+)?")


class JqError(Exception):
    """libjq refused a program (`compile=True`) or failed while running it; `str()` is jq's message."""

    def __init__(self, message: str, *, compile: bool = False) -> None:
        super().__init__(message)
        self.compile = compile


class JqEngine(Protocol):
    """Runs a complete jq program on the inputs (`args_json`, its input document) and returns every output.

    Raises JqError for jq's own errors, RenderError (final, one line) when a limit stops the program.
    An engine may also offer `run_batch(program, count, args_json)` (see `InProcessJq.run_batch`)."""

    def run(self, program: str, args_json: str) -> list[Any]: ...


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    programs: int
    weight: int


_PROGRAM_WEIGHT = 2_000


class _CompiledPrograms:
    """Compiled jq programs by their text alone (the inputs are not in it), so one serves every later pass
    whatever the inputs. The least recently used go once the weight held passes `budget`: a compiled
    program takes ~30 KiB (the builtins it uses) plus ~15 bytes per character of its text (a batch of 50
    templates, ~330 KiB; a template alone, ~40 KiB), so the weight is its length plus `_PROGRAM_WEIGHT`
    and the budget, not a count of programs, bounds the memory — in the sandbox child, under its cap."""

    def __init__(self, *, budget: int) -> None:
        self._budget = budget
        self._programs: OrderedDict[str, Any] = OrderedDict()
        self._weight = self._hits = self._misses = 0
        self._lock = threading.Lock()

    def __call__(self, program: str) -> Any:
        with self._lock:
            compiled = self._programs.get(program)
            if compiled is not None:
                self._programs.move_to_end(program)
                self._hits += 1
                return compiled
            self._misses += 1
        compiled = jq.compile(program)  # ValueError when it does not compile: nothing is kept
        with self._lock:
            if program not in self._programs:
                self._programs[program] = compiled
                self._weight += len(program) + _PROGRAM_WEIGHT
            while self._weight > self._budget and len(self._programs) > 1:
                self._weight -= len(self._programs.popitem(last=False)[0]) + _PROGRAM_WEIGHT
        return compiled

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._programs), self._weight)

    def cache_clear(self) -> None:
        with self._lock:
            self._programs.clear()
            self._weight = self._hits = self._misses = 0


# ~30 MB of compiled programs at most: the batches of ~4,000 templates, or ~800 templates alone.
_compile = _CompiledPrograms(budget=2_000_000)


class InProcessJq:
    """libjq in this process: fast, and unprotected against a program that never ends."""

    def run(self, program: str, args_json: str) -> list[Any]:
        try:
            compiled = _compile(program)
        except ValueError as exc:
            raise JqError(str(exc), compile=True) from None
        try:
            return list(compiled.input_text(args_json).all())
        except ValueError as exc:
            raise JqError(str(exc)) from None

    def run_batch(self, program: str, count: int, args_json: str) -> list[list[str] | None] | None:
        """A `batch_program` of `count` templates in one run: per template its outputs as JSON texts, or
        None where it must run alone. None for all of it when the program does not compile (one of its
        templates is not valid jq); every template None when the run as a whole fails."""
        try:
            compiled = _compile(program)
        except ValueError:
            return None
        try:
            results = compiled.input_text(args_json).all()
        except ValueError:
            return [None] * count
        if len(results) != 1 or not isinstance(results[0], list) or len(results[0]) != count:
            return [None] * count
        return [r if isinstance(r, list) and all(isinstance(t, str) for t in r) else None for r in results[0]]


IN_PROCESS = InProcessJq()


def variable_names(inputs: RenderInputs) -> frozenset[str]:
    """The properties variables a template can read as `$NAME` (what jq could bind of them)."""
    return frozenset(k for k in inputs.variables if k not in _RESERVED and _VARIABLE_NAME.match(k))


@functools.lru_cache(maxsize=4096)
def _references(program: str) -> frozenset[str]:
    # Every `$name` in the text, in strings and comments too: binding one more variable changes nothing.
    return frozenset(_REFERENCE.findall(program))


def _prelude(variables: Iterable[str]) -> str:
    """One line: the inputs bound from `.` (the `args_json` document) by destructuring, which leaves no
    name behind a template could read; env and input shadowed; `.` null again."""
    bound = "".join(f', "{name}": ${name}' for name in sorted(variables))
    return (
        f'. as {{"__env": $__env, "secrets": $secrets, "files": $files{bound}}} | def env: $__env; '
        f'def input: error("input {_NOT_ALLOWED}"); def inputs: error("inputs {_NOT_ALLOWED}"); '
        "$__env as $ENV | null | "
    )


def wrap_program(program: str, *, variables: Iterable[str] = ()) -> str:
    """The user's program as the engine runs it: the inputs bound (`variables`: the names of the
    properties variables, `variable_names`), env shadowed, input refused, outputs as JSON texts."""
    names = _references(program).intersection(variables)
    return _prelude(names) + "[\n" + program + _POSTLUDE


# libjq parses its builtins anew for every program it compiles (~1 ms): one program holding many templates
# as functions pays that once. A batch is small enough that a failed run, which sends its templates to run
# alone, costs little.
BATCH_SIZE = 50
# A template that reads its own line numbers, can end the whole program, or names our internals runs alone.
_NOT_BATCHED = ("$__loc__", "halt", "__cr_")
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_INTERPOLATION = "\\("
_CODE_STOP = re.compile(r'[#"()\[\]{}$\x00]')
_STRING_STOP = re.compile(r'["\\\x00]')
_BINDING_START = re.compile(r"[a-zA-Z_]")


@functools.lru_cache(maxsize=4096)
def batchable(program: str) -> bool:
    """Whether `program` can run as a function of a batch program: it cannot reach past its own brackets
    (where its definitions would be seen by the templates after it), end the run, read its line numbers,
    or clear a variable the others read (`$$$$v`). Unsure answers are False: the template runs alone."""
    if not program.strip() or any(word in program for word in _NOT_BATCHED):
        return False
    return _contained(program)


def _contained(program: str) -> bool:
    """Whether jq's lexer sees every bracket `program` opens closed within it, and none it did not open.

    Follows src/lexer.l (jq 1.7-1.8): brackets are matched in the lexer; strings hold `\\(` interpolations
    and `\\x` escapes; a comment runs to the end of its line (jq 1.8 continues it past a backslash: a
    comment holding one is refused); a `$` not followed by a name is the `$$$$v` syntax."""
    stack: list[str] = []  # the closer each open bracket expects; _INTERPOLATION for a `\(`
    pos, in_string = 0, False
    while True:
        if in_string:
            found = _STRING_STOP.search(program, pos)
            if found is None or found.group() == "\x00":
                return False
            pos = found.end()
            if found.group() == '"':
                in_string = False
            elif program.startswith("(", pos):
                stack.append(_INTERPOLATION)
                pos, in_string = pos + 1, False
            else:
                pos += 1  # the escaped character, whatever it is (an invalid escape fails to compile)
            continue
        found = _CODE_STOP.search(program, pos)
        if found is None:
            return not stack
        char, pos = found.group(), found.end()
        if char == "#":
            end = program.find("\n", pos)
            if "\\" in program[pos : end if end >= 0 else len(program)]:
                return False
            if end < 0:
                return not stack
            pos = end + 1
        elif char == '"':
            in_string = True
        elif char in _CLOSERS:
            stack.append(_CLOSERS[char])
        elif char in ")]}":
            if not stack:
                return False
            expected = stack.pop()
            if expected == _INTERPOLATION and char == ")":
                in_string = True
            elif expected != char:
                return False
        elif char != "$" or not _BINDING_START.match(program, pos):
            return False


# A template's outputs leave the batch only when they survive `tojson | fromjson` unchanged: a nan (printed
# as null) or an infinite (printed as ±1.797e308) does not, so it runs alone and gets the exact check and
# message of `_POSTLUDE`. The one non-finite the round trip keeps, a literal beyond ±1.8e308 that jq prints
# as written, `_parse_output` finds by its size.
_BATCH_OUT = "def __cr_out: map(tojson) as $t | if ($t | map(fromjson)) == . then $t else null end;\n"


def batch_program(programs: Sequence[str], *, variables: Iterable[str] = ()) -> str:
    """One jq program that runs each template (each `batchable`) once, in its own `try`: per template
    the list of its outputs as JSON texts, or null — for any error, and for anything `_BATCH_OUT` leaves
    to jq's exact check — so that template runs alone and fails with exactly the message it always gets.
    Each template sits inside `[ ... ]` on lines of its own, as in `wrap_program`."""
    names = frozenset[str]().union(*map(_references, programs)).intersection(variables)
    defs = "".join(f"def __cr_t{i}: [\n{program}\n];\n" for i, program in enumerate(programs))
    calls = ", ".join(f"(try (__cr_t{i} | __cr_out) catch null)" for i in range(len(programs)))
    return f"{_prelude(names)}{_BATCH_OUT}{defs}[{calls}]"


def _jq_message(exc: BaseException, *, program_lines: int) -> str:
    """jq's multi-line message -> one line, with line numbers pointing into the user's program."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    first = first.removeprefix("jq: error: ").removeprefix("jq: error (at <unknown>): ").rstrip(":")

    def fix(m: re.Match[str]) -> str:
        line = int(m.group(1)) - 1
        if line > program_lines:
            return "at the end of the program"
        return f"at line {max(line, 1)}{m.group(2) or ''}"

    return _LINE.sub(fix, first)


def jq_args(inputs: RenderInputs) -> dict[str, Any]:
    args: dict[str, Any] = {k: v for k, v in inputs.variables.items() if k not in _RESERVED}
    args["__env"] = dict(inputs.env)
    args["secrets"] = {k: dict(v) for k, v in inputs.secrets.items()}
    args["files"] = {k: dict(v) for k, v in inputs.files.items()}
    return args


def args_json(inputs: RenderInputs) -> str:
    """The inputs as the JSON document every jq run reads (`wrap_program`'s prelude binds them)."""
    return json.dumps(jq_args(inputs), sort_keys=True)


def _parse_int(digits: str) -> int | Decimal:
    # Python refuses to read integers of more than 4,300 digits; normalisation refuses them by size.
    return int(digits) if len(digits) < 1000 else Decimal(digits)


class _Unsure(Exception):
    """A batched output holds a number that may lie beyond ±1.8e308: jq's own check must judge it."""


def _batched_float(text: str) -> Decimal:
    value = Decimal(text)
    if value.adjusted() >= 308:
        raise _Unsure
    return value


def _batched_int(digits: str) -> int | Decimal:
    if len(digits) > 308:
        raise _Unsure
    return _parse_int(digits)


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=_parse_int)
_BATCHED_DECODER = json.JSONDecoder(parse_float=_batched_float, parse_int=_batched_int)


def _parse_output(text: str, *, max_bytes: int, batched: bool = False) -> Any:
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > max_bytes:
        raise RenderError(f"the output is {size} bytes; a connector config may be at most {max_bytes}")
    try:
        return (_BATCHED_DECODER if batched else _DECODER).decode(text)
    except RecursionError:
        raise RenderError("the output is nested too deeply") from None


def evaluate(
    program: str,
    inputs: RenderInputs,
    *,
    engine: JqEngine = IN_PROCESS,
    max_bytes: int = MAX_CONFIG_BYTES,
    arguments: str | None = None,
    variables: frozenset[str] | None = None,
) -> list[Any]:
    """Run one jq program with `jq -n` semantics; RenderError (one line) on compile or runtime errors.

    `arguments` (`args_json(inputs)`) and `variables` (`variable_names(inputs)`) may be passed in when many
    programs share the inputs."""
    lines = program.count("\n") + 1
    wrapped = wrap_program(program, variables=variable_names(inputs) if variables is None else variables)
    try:
        texts = engine.run(wrapped, arguments if arguments is not None else args_json(inputs))
    except JqError as exc:
        message = _jq_message(exc, program_lines=lines)
        if exc.compile:
            if "is not defined" in message:
                message += " (variables come from the mounted *.properties files)"
            raise RenderError(f"jq compile error: {message}") from None
        if message == _NONFINITE:
            raise RenderError(_NONFINITE_MESSAGE) from None
        raise RenderError(f"jq error: {message}") from None
    if not texts:
        raise RenderError("the program stopped (halt or halt_error) before its output")
    if len(texts) != 1 or not isinstance(texts[0], list) or not all(isinstance(t, str) for t in texts[0]):
        raise RenderError("the jq engine returned an unexpected result")
    return [_parse_output(t, max_bytes=max_bytes) for t in texts[0]]


def _parse_state(value: Any) -> DesiredState:
    if value is None:
        return DesiredState.RUNNING
    try:
        return DesiredState(str(value).lower())
    except ValueError:
        raise RenderError(f'"state" is {value!r}; expected running, paused or stopped') from None


def name_problem(name: str) -> str | None:
    """Why Connect's REST API could not address a connector of this name, or None when it can.

    A `/`, `\\` or `%` changes the URL the worker routes (Jetty decodes before matching), control
    characters and surrounding spaces cannot round-trip, and `.`/`..` are path segments."""
    if not name.strip():
        return "is empty"
    if name != name.strip():
        return "has leading or trailing whitespace"
    if name in (".", ".."):
        return "is a path segment"
    # Printable ASCII holds no control character: only the three URL characters are left to find.
    if name.isascii() and name.isprintable() and "/" not in name and "\\" not in name and "%" not in name:
        return None
    for ch in name:
        if ch in "/\\%":
            return f"contains {ch!r}"
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return f"contains the control character U+{ord(ch):04X}"
    return None


def _parse_cluster(doc: Mapping[str, Any], default_cluster: str) -> str:
    if "cluster" not in doc:
        return default_cluster
    cluster = doc["cluster"]
    if not isinstance(cluster, str) or not cluster.strip():
        shown = json.dumps(cluster) if not isinstance(cluster, Decimal) else str(cluster)
        raise RenderError(f'"cluster" is {shown}; expected the name of a Connect cluster (a string)')
    return cluster


_AUTO_RESTART_SHAPE = '"autoRestart" must be true, false or {"enabled": bool, "maxRestarts": int}'
# Strimzi's maxRestarts is a Java int; anything larger is a typo, and int() of a 1000-digit Decimal is slow.
_MAX_RESTARTS_LIMIT = 2**31 - 1


def _parse_auto_restart(value: Any) -> AutoRestart:
    """The template's "autoRestart" (present; absent is None, the default policy): true, false, or an
    object with optional "enabled" (bool) and "maxRestarts" (an integer >= 0: an int, or a Decimal with
    no fraction, as numbers arrive from jq)."""

    def _kind(v: Any) -> str:
        return "an object" if isinstance(v, Mapping) else _json_type(v)

    if isinstance(value, bool):
        return AutoRestart(enabled=value)
    if not isinstance(value, Mapping):
        raise RenderError(f"{_AUTO_RESTART_SHAPE}; got {_kind(value)}")
    unknown = sorted(set(value) - {"enabled", "maxRestarts"})
    if unknown:
        raise RenderError(f"{_AUTO_RESTART_SHAPE}; got the key(s) {', '.join(map(json.dumps, unknown))}")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RenderError(f'{_AUTO_RESTART_SHAPE}; "enabled" is {_kind(enabled)}')
    if "maxRestarts" not in value:
        return AutoRestart(enabled=enabled)
    limit = value["maxRestarts"]
    number = isinstance(limit, int | Decimal) and not isinstance(limit, bool)
    # The range first: int() of a Decimal like 1E+999999 would build a huge integer.
    if not number or not 0 <= limit <= _MAX_RESTARTS_LIMIT or limit != int(limit):
        detail = str(limit) if number else _kind(limit)
        raise RenderError(
            f'{_AUTO_RESTART_SHAPE}; "maxRestarts" is {detail} (an integer from 0 to {_MAX_RESTARTS_LIMIT})'
        )
    return AutoRestart(enabled=enabled, max_restarts=int(limit))


_SIZE_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _config_size(config: Mapping[str, str]) -> int:
    text = _SIZE_ENCODER.encode(config)
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "null"


def desired_from_document(
    doc: Any,
    *,
    spec: ConnectorSpec,
    redactor: Redactor,
    default_cluster: str = DEFAULT_CLUSTER,
    max_config_bytes: int = MAX_CONFIG_BYTES,
) -> DesiredConnector:
    if not isinstance(doc, Mapping):
        raise RenderError(f"the program yields {_json_type(doc)}, expected an object with name and config")
    unknown = sorted(set(doc) - _ALLOWED_FIELDS)
    if unknown:
        raise RenderError(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_ALLOWED_FIELDS))}"
        )
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RenderError('the output has no "name" (a non-empty string)')
    if problem := name_problem(name):
        raise RenderError(f'"name" {json.dumps(name)} {problem}: Connect\'s REST API could not address it')
    config = doc.get("config")
    if not isinstance(config, Mapping):
        raise RenderError('the output has no "config" object')
    cluster = _parse_cluster(doc, default_cluster)
    normalized = normalize_config(config, name=name)
    size = _config_size(normalized)
    if size > max_config_bytes:
        raise RenderError(
            f"the config is {size} bytes; Kafka's config topic takes at most {max_config_bytes} per connector"
        )
    return DesiredConnector(
        name=name,
        config=normalized,
        state=_parse_state(doc.get("state")),
        cluster=cluster,
        enabled=spec.enabled,
        source=spec.source,
        secret_keys=redactor.secret_keys(normalized),
        auto_restart=_parse_auto_restart(doc["autoRestart"]) if "autoRestart" in doc else None,
    )


def render_connector(
    spec: ConnectorSpec,
    *,
    inputs: RenderInputs,
    default_cluster: str = DEFAULT_CLUSTER,
    engine: JqEngine = IN_PROCESS,
    max_config_bytes: int = MAX_CONFIG_BYTES,
    arguments: str | None = None,
    redactor: Redactor | None = None,
    variables: frozenset[str] | None = None,
) -> DesiredConnector:
    """Render one spec. Every RenderError message is one line, scrubbed of secret values.

    `arguments` (`args_json(inputs)`), `variables` (`variable_names(inputs)`) and `redactor` may be passed
    in when many specs share the inputs."""
    redactor = redactor or Redactor(inputs.secret_values)
    try:
        if not spec.program.strip():
            raise RenderError("the jq program is empty")
        outputs = evaluate(
            spec.program,
            inputs,
            engine=engine,
            max_bytes=max_config_bytes,
            arguments=arguments,
            variables=variables,
        )
        return _one_connector(
            outputs, spec=spec, redactor=redactor, default_cluster=default_cluster, max_bytes=max_config_bytes
        )
    except RenderError as exc:
        raise RenderError(redactor.scrub(str(exc))) from None


def _one_connector(
    outputs: Sequence[Any], *, spec: ConnectorSpec, redactor: Redactor, default_cluster: str, max_bytes: int
) -> DesiredConnector:
    if len(outputs) != 1:
        raise RenderError(f"the program yields {len(outputs)} values; expected exactly one")
    return desired_from_document(
        outputs[0], spec=spec, redactor=redactor, default_cluster=default_cluster, max_config_bytes=max_bytes
    )


# An engine's `run_batch(program, count, args_json)` (see `InProcessJq.run_batch`).
_RunBatch = Callable[[str, int, str], list[list[str] | None] | None]
# A batch that does not compile is split in halves down to this size; smaller ones run alone.
_SMALLEST_SPLIT = 4


@dataclass(frozen=True, slots=True)
class Renderer:
    """What every template of one pass shares: the inputs (their jq document, serialised once, and the
    names of their variables), the redactor, the engine and the size cap. `render` is `render_connector`
    with all of it bound; `render_many` renders a whole pass in batches."""

    inputs: RenderInputs
    default_cluster: str = DEFAULT_CLUSTER
    engine: JqEngine = IN_PROCESS
    max_config_bytes: int = MAX_CONFIG_BYTES
    redactor: Redactor | None = None
    arguments: str = field(init=False, repr=False)
    variables: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", args_json(self.inputs))
        object.__setattr__(self, "variables", variable_names(self.inputs))
        if self.redactor is None:
            object.__setattr__(self, "redactor", Redactor(self.inputs.secret_values))

    def render_many(self, specs: Sequence[ConnectorSpec]) -> list[DesiredConnector | RenderError]:
        """`render` of each spec, in order, a failure as its RenderError: the same results and messages.

        Where the engine offers `run_batch`, templates run BATCH_SIZE at a time as one jq program
        (`batch_program`: one compile, one run, one crossing of the sandbox's pipe); any template a
        batch could not settle — an error, a limit, nan, a batch that did not compile — runs alone."""
        results: list[DesiredConnector | RenderError | None] = [None] * len(specs)
        run_batch: _RunBatch | None = getattr(self.engine, "run_batch", None)
        if run_batch is not None:
            todo = [i for i, spec in enumerate(specs) if batchable(spec.program)]
            for start in range(0, len(todo), BATCH_SIZE):
                self._batch(run_batch, todo[start : start + BATCH_SIZE], specs, results)
        return [self._alone(spec) if r is None else r for spec, r in zip(specs, results, strict=True)]

    def _batch(
        self,
        run_batch: _RunBatch,
        chunk: list[int],
        specs: Sequence[ConnectorSpec],
        results: list[DesiredConnector | RenderError | None],
    ) -> None:
        """Settle what one batch can of the specs at `chunk`. One that does not compile is split in halves:
        a template that is not valid jq costs its batch a few compiles, not one per template."""
        if len(chunk) < 2:
            return  # one template alone is a plain run
        program = batch_program([specs[i].program for i in chunk], variables=self.variables)
        answers = run_batch(program, len(chunk), self.arguments)
        if answers is None:
            if len(chunk) >= _SMALLEST_SPLIT:
                half = len(chunk) // 2
                self._batch(run_batch, chunk[:half], specs, results)
                self._batch(run_batch, chunk[half:], specs, results)
            return
        for i, texts in zip(chunk, answers, strict=True):
            if texts is not None:
                results[i] = self._settled(specs[i], texts)

    def _settled(self, spec: ConnectorSpec, texts: list[str]) -> DesiredConnector | RenderError | None:
        redactor = self.redactor or Redactor(self.inputs.secret_values)
        try:
            outputs = [_parse_output(t, max_bytes=self.max_config_bytes, batched=True) for t in texts]
            return _one_connector(
                outputs,
                spec=spec,
                redactor=redactor,
                default_cluster=self.default_cluster,
                max_bytes=self.max_config_bytes,
            )
        except RenderError as exc:
            return RenderError(redactor.scrub(str(exc)))
        except _Unsure:
            return None

    def _alone(self, spec: ConnectorSpec) -> DesiredConnector | RenderError:
        try:
            return self.render(spec)
        except RenderError as exc:
            return exc

    def render(self, spec: ConnectorSpec) -> DesiredConnector:
        return render_connector(
            spec,
            inputs=self.inputs,
            default_cluster=self.default_cluster,
            engine=self.engine,
            max_config_bytes=self.max_config_bytes,
            arguments=self.arguments,
            redactor=self.redactor,
            variables=self.variables,
        )
