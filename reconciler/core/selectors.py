"""Kubernetes label selectors (equality- and set-based), parsed and matched on plain dicts.

Pure: no I/O. The same selector string is sent to the API server by the watcher, so it follows its grammar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.errors import ConfigError

_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case _:
                return not present


@dataclass(frozen=True, slots=True)
class Selector:
    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_selector(text: str) -> Selector:
    """Parse `destination=connect,tier!=x,env in (a,b),!legacy` into a Selector; ConfigError if malformed."""
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        if m := _SET_RE.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            reqs.append(Requirement(key.strip(), "!=", frozenset({value.strip()})))
        elif "=" in part:
            key, value = part.replace("==", "=", 1).split("=", 1)
            reqs.append(Requirement(key.strip(), "=", frozenset({value.strip()})))
        elif part.startswith("!"):
            reqs.append(Requirement(part[1:].strip(), "!exists"))
        else:
            reqs.append(Requirement(part, "exists"))
    for r in reqs:
        if not r.key or any(c.isspace() for c in r.key):
            raise ConfigError(f"label selector {text!r}: bad requirement for key {r.key!r}")
    return Selector(text, tuple(reqs))
