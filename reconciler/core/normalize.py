"""Connector configs as Kafka Connect stores them: every value a string, `name` included.

Pure. Comparing anything else is what made connect-operator PUT (and so restart) connectors forever:
`"tasks.max": 1` never equals Connect's `"1"`, and a config without `name` never equals Connect's copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.errors import RenderError


def normalize_value(key: str, value: Any) -> str:
    """JSON scalar -> the string Connect stores; RenderError for null and non-scalars."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else json.dumps(value)
    if value is None:
        raise RenderError(f'config key "{key}" is null (an undefined env var or missing input?)')
    kind = (
        "an object"
        if isinstance(value, Mapping)
        else "an array"
        if isinstance(value, list)
        else "not a scalar"
    )
    raise RenderError(f'config key "{key}" is {kind}; Connect accepts only strings, numbers and booleans')


def normalize_config(config: Mapping[str, Any], *, name: str) -> dict[str, str]:
    """Stringify every value and add `name`; RenderError when `config.name` contradicts the connector name."""
    result = {str(k): normalize_value(str(k), v) for k, v in config.items()}
    inner = result.get("name")
    if inner is not None and inner != name:
        raise RenderError(f'config.name "{inner}" differs from the connector name "{name}"')
    result["name"] = name
    return result
