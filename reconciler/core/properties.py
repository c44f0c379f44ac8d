"""Java-style `.properties` files turned into jq variables, the way connect-operator templates expect them.

Pure: takes file texts, returns dicts. `schema.registry.url=x` becomes `$SCHEMA_REGISTRY_URL` = "x".
Unlike connect-operator the value is everything after the first separator, never shell-evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_JAAS_USER = re.compile(r'\busername\s*=\s*"([^"]*)"')
_JAAS_PASS = re.compile(r'\bpassword\s*=\s*"([^"]*)"')


def parse_properties(text: str) -> dict[str, str]:
    """Parse `key=value` / `key: value` lines; `#` and `!` comment lines and blank lines are skipped."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        positions = [p for p in (line.find("="), line.find(":")) if p >= 0]
        if not positions:
            result[line] = ""
            continue
        cut = min(positions)
        result[line[:cut].strip()] = line[cut + 1 :].strip()
    return result


def variable_name(key: str) -> str:
    """`schema.registry.url` -> `SCHEMA_REGISTRY_URL`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", key).upper()


def to_jq_vars(files: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Merge (file name, text) pairs into jq variables. Later files win; returns (vars, warnings)."""
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    warnings: list[str] = []
    for name, text in files:
        for key, value in parse_properties(text).items():
            var = variable_name(key)
            if var in merged and merged[var] != value:
                warnings.append(f"${var} is set in {origin[var]} and again in {name}; {name} wins")
            merged[var] = value
            origin[var] = name
    return merged, warnings


def jaas_credentials(variables: Mapping[str, str]) -> dict[str, str]:
    """connect-operator exported KAFKA_API_KEY/SECRET from sasl.jaas.config; Cloud templates read them."""
    jaas = variables.get("SASL_JAAS_CONFIG", "")
    user, password = _JAAS_USER.search(jaas), _JAAS_PASS.search(jaas)
    found: dict[str, str] = {}
    if user:
        found["KAFKA_API_KEY"] = user.group(1)
    if password:
        found["KAFKA_API_SECRET"] = password.group(1)
    return found
