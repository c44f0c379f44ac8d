"""Exceptions of connect-reconciler.

    ReconcilerError                 base of everything raised on purpose
    ├── SourceError                 a ConfigMap file or object cannot be read (bad YAML, wrong shape)
    ├── SpecError                   a selected ConfigMap is unusable as a whole (e.g. destination.cc)
    ├── RenderError                 a data key's jq program fails or yields an invalid connector
    ├── ConfigError                 the reconciler's own settings are wrong (clusters file, flags)
    ├── ShuttingDown                a stop was requested while waiting to retry: nothing more is tried
    ├── LedgerUnavailable           the ownership ledger cannot be read or written: what we own is unknown
    │   └── LedgerConflict          409: someone else wrote it since we read it; re-read and re-plan
    └── ConnectApiError(status)     Kafka Connect answered with an error, or could not be reached
        ├── ConnectUnavailable      Connect itself did not answer: refused, reset, timed out, a proxy's
        │                           502/503/504, a starting worker's 404 (not Connect's JSON)
        ├── ConnectNotFound         Connect's own JSON 404: the connector does not exist
        ├── ConnectConflict         409 (rebalance, forwarding, or "already exists")
        ├── ConnectRequestTimeout   500 "Request timed out": the write's outcome is unknown
        └── ConnectRequestInvalid   a 500 that reports a request Connect can never accept (e.g. an
                                    unrecognized body field): permanent, never retried

Two properties steer the retry policy and the executor: `retryable` (running again could help) and
`outcome_unknown` (the request may have taken effect: re-read before retrying a write).
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


class ShuttingDown(ReconcilerError):
    pass


class LedgerUnavailable(ReconcilerError):
    retryable = True


class LedgerConflict(LedgerUnavailable):
    pass


class ConnectApiError(ReconcilerError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
        outcome_unknown: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self._outcome_unknown = outcome_unknown

    @property
    def retryable(self) -> bool:
        return self.status is not None and self.status >= 500

    @property
    def outcome_unknown(self) -> bool:
        """A 5xx from Connect may come after the write landed; 4xx answers mean it did not."""
        if self._outcome_unknown is not None:
            return self._outcome_unknown
        return self.status is not None and self.status >= 500


class ConnectUnavailable(ConnectApiError):
    @property
    def retryable(self) -> bool:
        return True

    @property
    def outcome_unknown(self) -> bool:
        return bool(self._outcome_unknown)


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

    @property
    def outcome_unknown(self) -> bool:
        return True


class ConnectRequestInvalid(ConnectApiError):
    """Connect answered 500 for a request body it cannot accept; the same request fails again."""

    @property
    def retryable(self) -> bool:
        return False

    @property
    def outcome_unknown(self) -> bool:
        return False
