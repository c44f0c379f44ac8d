"""jq programs -> desired connectors. Compiled programs are cached.

Pure: the environment, properties variables and mounted files arrive as `RenderInputs`; the process
environment is never read. jq's own `env` and `$ENV` are shadowed by a prefix so a template sees exactly
`inputs.env` (which the edge may have filtered through an allow-list).

What a template can use:
    env.NAME, $ENV.NAME            environment variables (undefined -> null)
    $SCHEMA_REGISTRY_URL           one variable per key of the mounted *.properties files
    $secrets.VOLUME.KEY            files of mounted Secret volumes (values are secret)
    $files.VOLUME.KEY              files of mounted ConfigMap volumes
It must yield one object: {"name": str, "config": {...}, "state"?: running|paused|stopped, "cluster"?: str}.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import jq

from reconciler.core.normalize import normalize_config
from reconciler.core.redaction import Redactor
from reconciler.errors import RenderError
from reconciler.model import DEFAULT_CLUSTER, ConnectorSpec, DesiredConnector, DesiredState, RenderInputs

_PRELUDE = "def env: $__env; $__env as $ENV | "
_ALLOWED_FIELDS = frozenset({"name", "config", "state", "cluster"})
_COLUMN = re.compile(r"line 1, column (\d+)")
_RESERVED = frozenset({"__env", "secrets", "files", "ENV"})


# Sized for large fleets: an LRU smaller than the working set thrashes on every full-set reconcile.
@functools.lru_cache(maxsize=4096)
def _compile(program: str, args_json: str) -> Any:
    return jq.compile(_PRELUDE + program, args=json.loads(args_json))


def _jq_message(exc: BaseException) -> str:
    """jq's multi-line message -> one line, with columns on line 1 corrected for the prelude."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = first.removeprefix("jq: error: ").removeprefix("jq: error (at <unknown>): ").rstrip(":")
    return _COLUMN.sub(lambda m: f"line 1, column {max(1, int(m.group(1)) - len(_PRELUDE))}", first)


def jq_args(inputs: RenderInputs) -> dict[str, Any]:
    args: dict[str, Any] = {k: v for k, v in inputs.variables.items() if k not in _RESERVED}
    args["__env"] = dict(inputs.env)
    args["secrets"] = {k: dict(v) for k, v in inputs.secrets.items()}
    args["files"] = {k: dict(v) for k, v in inputs.files.items()}
    return args


def evaluate(program: str, inputs: RenderInputs) -> list[Any]:
    """Run one jq program with `jq -n` semantics; RenderError (one line) on compile or runtime errors."""
    try:
        compiled = _compile(program, json.dumps(jq_args(inputs), sort_keys=True))
    except ValueError as exc:
        message = _jq_message(exc)
        if "is not defined" in message:
            message += " (variables come from the mounted *.properties files)"
        raise RenderError(f"jq compile error: {message}") from None
    try:
        return list(compiled.input_value(None).all())
    except ValueError as exc:
        raise RenderError(f"jq error: {_jq_message(exc)}") from None


def _parse_state(value: Any) -> DesiredState:
    if value is None:
        return DesiredState.RUNNING
    try:
        return DesiredState(str(value).lower())
    except ValueError:
        raise RenderError(f'"state" is {value!r}; expected running, paused or stopped') from None


def desired_from_document(
    doc: Any, *, spec: ConnectorSpec, redactor: Redactor, default_cluster: str = DEFAULT_CLUSTER
) -> DesiredConnector:
    if not isinstance(doc, Mapping):
        raise RenderError(f"the program yields {type(doc).__name__}, expected an object with name and config")
    unknown = sorted(set(doc) - _ALLOWED_FIELDS)
    if unknown:
        raise RenderError(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_ALLOWED_FIELDS))}"
        )
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RenderError('the output has no "name" (a non-empty string)')
    if name != name.strip() or "/" in name:
        raise RenderError(f'"name" {name!r} has surrounding whitespace or a slash')
    config = doc.get("config")
    if not isinstance(config, Mapping):
        raise RenderError('the output has no "config" object')
    cluster = doc.get("cluster") or default_cluster
    if not isinstance(cluster, str):
        raise RenderError('"cluster" must be a string')
    normalized = normalize_config(config, name=name)
    return DesiredConnector(
        name=name,
        config=normalized,
        state=_parse_state(doc.get("state")),
        cluster=cluster,
        enabled=spec.enabled,
        source=spec.source,
        secret_keys=redactor.secret_keys(normalized),
    )


def render_connector(
    spec: ConnectorSpec, *, inputs: RenderInputs, default_cluster: str = DEFAULT_CLUSTER
) -> DesiredConnector:
    """Render one spec. Every RenderError message is one line, scrubbed of secret values."""
    redactor = Redactor(inputs.secret_values)
    try:
        if not spec.program.strip():
            raise RenderError("the jq program is empty")
        outputs = evaluate(spec.program, inputs)
        if len(outputs) != 1:
            raise RenderError(f"the program yields {len(outputs)} values; expected exactly one")
        return desired_from_document(
            outputs[0], spec=spec, redactor=redactor, default_cluster=default_cluster
        )
    except RenderError as exc:
        raise RenderError(redactor.scrub(str(exc))) from None
