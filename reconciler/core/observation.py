"""Kafka Connect's JSON answers -> LiveConnector values.

Pure: parses payloads already fetched by `clients.connect`. Parsing is lenient (unknown fields ignored)
because each Kafka release adds fields to status and info.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.model import LiveConnector


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


def live_from_parts(name: str, config: Any, status: Any) -> LiveConnector:
    status = status if isinstance(status, Mapping) else {}
    connector = status.get("connector") if isinstance(status.get("connector"), Mapping) else {}
    tasks = status.get("tasks") if isinstance(status.get("tasks"), list) else []
    state = connector.get("state") if connector else None
    return LiveConnector(
        name=name,
        config=_str_map(config),
        state=str(state) if state is not None else None,
        tasks=tuple(str(t.get("state")) for t in tasks if isinstance(t, Mapping)),
    )


def live_from_expanded(payload: Any) -> dict[str, LiveConnector]:
    """`GET /connectors?expand=info&expand=status` -> {name: LiveConnector}."""
    result: dict[str, LiveConnector] = {}
    if not isinstance(payload, Mapping):
        return result
    for name, entry in payload.items():
        if not isinstance(entry, Mapping):
            continue
        info = entry.get("info") if isinstance(entry.get("info"), Mapping) else {}
        result[str(name)] = live_from_parts(
            str(name), info.get("config") if info else None, entry.get("status")
        )
    return result
