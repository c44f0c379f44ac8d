"""Structured logging (structlog) with secret scrubbing as the last processor before rendering.

Edge: configures global logging once per process. `use_redactor` installs the current secret values.
Tracebacks are rendered to text *before* scrubbing (both formats), and every string in the event —
keys too, nested in dicts, lists and tuples, the traceback included — loses any known secret value in
any of its encodings (JSON-escaped, line by line, collapsed, cut off: `redaction.Redactor.scrub`), so a
message or an exception that quotes a config cannot leak it.
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


def current_redactor() -> Redactor:
    """The secrets of the current pass (audit records and Events are scrubbed with the same ones)."""
    return _current["redactor"]


def _scrub(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    scrubbed: MutableMapping[str, Any] = _current["redactor"].scrub_tree(dict(event))
    return scrubbed


def configure_logging(*, level: str = "info", fmt: str = "console", stream: TextIO | None = None) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # the traceback becomes a string that _scrub sees
            _scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
