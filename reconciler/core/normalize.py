"""Connector configs as Kafka Connect stores them: every value a string, `name` included.

Pure. Comparing anything else is what made connect-operator PUT (and so restart) connectors forever:
`"tasks.max": 1` never equals Connect's `"1"`, and a config without `name` never equals Connect's copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
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
    if isinstance(value, Decimal):
        return _decimal(key, value)
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


# 10**400 has 401 digits: far past any Long or Double a Connect config can parse, and cheap to print.
_MAX_EXPONENT = 400


def _decimal(key: str, value: Decimal) -> str:
    """A JSON number literal kept exactly: integral values as digits, others as Python's float text
    when that text means the same number (so `1.10` stays `1.1`, as before), else the literal."""
    if value.adjusted() > _MAX_EXPONENT:
        raise RenderError(f'config key "{key}" is the number {value}, too large to write out')
    if value == value.to_integral_value():
        return str(int(value))
    as_float = float(value)
    return json.dumps(as_float) if Decimal(repr(as_float)) == value else str(value)


def normalize_config(config: Mapping[str, Any], *, name: str) -> dict[str, str]:
    """Stringify every value and add `name`; RenderError when `config.name` contradicts the connector name."""
    result = {str(k): normalize_value(str(k), v) for k, v in config.items()}
    inner = result.get("name")
    if inner is not None and inner != name:
        raise RenderError(f'config.name "{inner}" differs from the connector name "{name}"')
    result["name"] = name
    return result
