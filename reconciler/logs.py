"""Structured logging (structlog) with secret scrubbing as the last processor before rendering.

Edge: configures global logging once per process. `use_redactor` installs the current secret values;
every string in every event is scrubbed of them, so a message that quotes a config cannot leak it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from reconciler.core.redaction import Redactor

_current = {"redactor": Redactor()}


def use_redactor(redactor: Redactor) -> None:
    _current["redactor"] = redactor


def _scrub(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    redactor = _current["redactor"]
    return {k: redactor.scrub(v) if isinstance(v, str) else v for k, v in event.items()}


def configure_logging(*, level: str = "info", fmt: str = "console", stream: TextIO | None = None) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
