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

Every output leaves jq as `tojson` text, so numbers keep the literal digits jq read
(123456789012345678901234567890 stays exact; libjq's conversion to a C double would round it).
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

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
_NOT_ALLOWED = "is not allowed in a template (a template reads env, $VARS, $secrets and $files, no input)"
# The program runs inside `[ ... ]` on its own lines, so jq's line numbers are off by exactly one.
_PRELUDE = (
    "def env: $__env; "
    f'def input: error("input {_NOT_ALLOWED}"); def inputs: error("inputs {_NOT_ALLOWED}"); '
    "$__env as $ENV | [\n"
)
_POSTLUDE = (
    f'\n] | if any(.[] | ..; type == "number" and (isnan or isinfinite)) then error("{_NONFINITE}") '
    "else map(tojson) end"
)
_ALLOWED_FIELDS = frozenset({"name", "config", "state", "cluster", "autoRestart"})
_LINE = re.compile(r"at <top-level>, line (\d+)(, column \d+)?")
_RESERVED = frozenset({"__env", "secrets", "files", "ENV"})


class JqError(Exception):
    """libjq refused a program (`compile=True`) or failed while running it; `str()` is jq's message."""

    def __init__(self, message: str, *, compile: bool = False) -> None:
        super().__init__(message)
        self.compile = compile


class JqEngine(Protocol):
    """Runs a complete jq program with `jq -n` semantics and returns every output.

    Raises JqError for jq's own errors, RenderError (final, one line) when a limit stops the program.
    An engine may also offer `run_batch(programs, args_json)` (see `batch_program`)."""

    def run(self, program: str, args_json: str) -> list[Any]: ...


# Compiled programs are kept for a watcher whose templates render again; the pass memory means only
# changed templates do, so a small cache bounds the memory (each compiled program holds its arguments).
@functools.lru_cache(maxsize=256)
def _compile(program: str, args_json: str) -> Any:
    return jq.compile(program, args=json.loads(args_json))


class InProcessJq:
    """libjq in this process: fast, and unprotected against a program that never ends."""

    def run(self, program: str, args_json: str) -> list[Any]:
        try:
            compiled = _compile(program, args_json)
        except ValueError as exc:
            raise JqError(str(exc), compile=True) from None
        try:
            return list(compiled.input_value(None).all())
        except ValueError as exc:
            raise JqError(str(exc)) from None

    def run_batch(self, programs: Sequence[str], args_json: str) -> list[list[str] | None]:
        """Every template of `programs` in one compile and one run (`batch_program`): per template its
        outputs as JSON texts, or None where it must run alone. Any failure of the whole: all None."""
        try:
            (result,) = _compile(batch_program(programs), args_json).input_value(None).all()
        except ValueError:
            return [None] * len(programs)
        if not isinstance(result, list) or len(result) != len(programs):
            return [None] * len(programs)
        return [r if isinstance(r, list) and all(isinstance(t, str) for t in r) else None for r in result]


IN_PROCESS = InProcessJq()


def wrap_program(program: str) -> str:
    """The user's program as the engine runs it: shadowed env, refused input, outputs as JSON texts."""
    return _PRELUDE + program + _POSTLUDE


# libjq compiles its builtins anew for every program (~1.5 ms); one program holding many templates as
# functions pays that once. A batch is small enough that a failed compile or run, which sends its
# templates to run alone, costs little.
BATCH_SIZE = 50
_BATCH_PRELUDE = _PRELUDE.removesuffix("[\n")
# A template that reads its own line numbers or can end the whole program must run alone.
_NOT_BATCHED = ("$__loc__", "halt")


def batchable(program: str) -> bool:
    return bool(program.strip()) and not any(word in program for word in _NOT_BATCHED)


def batch_program(programs: Sequence[str]) -> str:
    """One jq program that runs each template once, in its own `try`: per template the list of its
    outputs as JSON texts, or null — for any error, and for nan or infinite — so that template runs
    alone and fails with exactly the message it always gets. Each template is a function body, on
    lines of its own (a trailing comment cannot swallow what follows)."""
    out = 'def __cr_out: if any(.[] | ..; type == "number" and (isnan or isinfinite)) then null else map(tojson) end;'
    defs = "".join(f"def __cr_t{i}:\n{program}\n;\n" for i, program in enumerate(programs))
    calls = ", ".join(f"(try ([__cr_t{i}] | __cr_out) catch null)" for i in range(len(programs)))
    return f"{_BATCH_PRELUDE}{out}\n{defs}[{calls}]"


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
    return json.dumps(jq_args(inputs), sort_keys=True)


def _parse_int(digits: str) -> int | Decimal:
    # Python refuses to read integers of more than 4,300 digits; normalisation refuses them by size.
    return int(digits) if len(digits) < 1000 else Decimal(digits)


def _parse_output(text: str, *, max_bytes: int) -> Any:
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise RenderError(f"the output is {size} bytes; a connector config may be at most {max_bytes}")
    try:
        return json.loads(text, parse_float=Decimal, parse_int=_parse_int)
    except RecursionError:
        raise RenderError("the output is nested too deeply") from None


def evaluate(
    program: str,
    inputs: RenderInputs,
    *,
    engine: JqEngine = IN_PROCESS,
    max_bytes: int = MAX_CONFIG_BYTES,
    arguments: str | None = None,
) -> list[Any]:
    """Run one jq program with `jq -n` semantics; RenderError (one line) on compile or runtime errors."""
    lines = program.count("\n") + 1
    try:
        texts = engine.run(wrap_program(program), arguments if arguments is not None else args_json(inputs))
    except JqError as exc:
        message = _jq_message(exc, program_lines=lines)
        if exc.compile:
            if "is not defined" in message:
                message += " (variables come from the mounted *.properties files)"
            raise RenderError(f"jq compile error: {message}") from None
        if message == _NONFINITE:
            raise RenderError(
                "the output contains nan, infinite or a number beyond ±1.8e308, which JSON cannot carry"
            ) from None
        raise RenderError(f"jq error: {message}") from None
    if not texts:
        raise RenderError("the program stopped (halt or halt_error) before its output")
    if len(texts) != 1 or not isinstance(texts[0], list):
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


def _config_size(config: Mapping[str, str]) -> int:
    return len(json.dumps(config, ensure_ascii=False).encode("utf-8"))


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
) -> DesiredConnector:
    """Render one spec. Every RenderError message is one line, scrubbed of secret values.

    `arguments` (`args_json(inputs)`) and `redactor` may be passed in when many specs share the inputs."""
    redactor = redactor or Redactor(inputs.secret_values)
    try:
        if not spec.program.strip():
            raise RenderError("the jq program is empty")
        outputs = evaluate(
            spec.program, inputs, engine=engine, max_bytes=max_config_bytes, arguments=arguments
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


@dataclass(frozen=True, slots=True)
class Renderer:
    """What every template of one pass shares: the inputs (as jq arguments, serialised once), the
    redactor, the engine and the size cap. `render` is `render_connector` with all of it bound."""

    inputs: RenderInputs
    default_cluster: str = DEFAULT_CLUSTER
    engine: JqEngine = IN_PROCESS
    max_config_bytes: int = MAX_CONFIG_BYTES
    redactor: Redactor | None = None
    arguments: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", args_json(self.inputs))
        if self.redactor is None:
            object.__setattr__(self, "redactor", Redactor(self.inputs.secret_values))

    def render_many(self, specs: Sequence[ConnectorSpec]) -> list[DesiredConnector | RenderError]:
        """`render` of each spec, in order, a failure as its RenderError. Templates run in batches
        (`batch_program`) where the engine offers `run_batch`: same results, a fraction of the cost;
        any template the batch could not settle runs alone through `render`."""
        results: list[DesiredConnector | RenderError | None] = [None] * len(specs)
        run_batch = getattr(self.engine, "run_batch", None)
        todo = [i for i, spec in enumerate(specs) if batchable(spec.program)] if run_batch else []
        redactor = self.redactor or Redactor(self.inputs.secret_values)
        for start in range(0, len(todo), BATCH_SIZE):
            chunk = todo[start : start + BATCH_SIZE]
            if len(chunk) < 2:
                break  # one template alone is a plain run
            assert run_batch is not None
            answers = run_batch([specs[i].program for i in chunk], self.arguments)
            for i, texts in zip(chunk, answers, strict=True):
                if texts is None:
                    continue
                try:
                    outputs = [_parse_output(t, max_bytes=self.max_config_bytes) for t in texts]
                    results[i] = _one_connector(
                        outputs,
                        spec=specs[i],
                        redactor=redactor,
                        default_cluster=self.default_cluster,
                        max_bytes=self.max_config_bytes,
                    )
                except RenderError as exc:
                    results[i] = RenderError(redactor.scrub(str(exc)))
        return [self._alone(spec) if r is None else r for spec, r in zip(specs, results, strict=True)]

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
        )
