"""Exceptions of connect-reconciler.

    ReconcilerError                 base of everything raised on purpose
    ├── SourceError                 a ConfigMap file or object cannot be read (bad YAML, wrong shape)
    ├── SpecError                   a selected ConfigMap is unusable as a whole (e.g. destination.cc)
    ├── RenderError                 a data key's jq program fails or yields an invalid connector
    ├── ConfigError                 the reconciler's own settings are wrong (clusters file, flags)
    └── ConnectApiError(status)     Kafka Connect answered with an error, or could not be reached
        ├── ConnectUnavailable      transport failure: refused, reset, timed out (status None)
        ├── ConnectNotFound         404
        ├── ConnectConflict         409 (rebalance, forwarding, or "already exists")
        └── ConnectRequestTimeout   500 "Request timed out": the write's outcome is unknown

Messages are one line and never carry a secret value: callers scrub them with `redaction.Redactor`.
"""

from __future__ import annotations


class ReconcilerError(Exception):
    pass


class SourceError(ReconcilerError):
    pass


class SpecError(ReconcilerError):
    pass


class RenderError(ReconcilerError):
    pass


class ConfigError(ReconcilerError):
    pass


class ConnectApiError(ReconcilerError):
    def __init__(self, message: str, *, status: int | None = None, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path

    @property
    def retryable(self) -> bool:
        return self.status is not None and self.status >= 500


class ConnectUnavailable(ConnectApiError):
    @property
    def retryable(self) -> bool:
        return True


class ConnectNotFound(ConnectApiError):
    pass


class ConnectConflict(ConnectApiError):
    @property
    def already_exists(self) -> bool:
        return "already exists" in str(self)

    @property
    def retryable(self) -> bool:
        return not self.already_exists


class ConnectRequestTimeout(ConnectApiError):
    """The worker gave up waiting (90 s) but may still complete the write: re-read before retrying."""

    @property
    def retryable(self) -> bool:
        return True
