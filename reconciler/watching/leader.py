"""Lease-based leader election for `run`, with client-go's semantics (tools/leaderelection).

Edge (talks to Kubernetes), on an injected clock. One `coordination.k8s.io/v1` Lease:
- a follower times the holder's renewals on its *own* monotonic clock: `observed_at` is taken when the
  record read changes, and it takes over only after the record's leaseDurationSeconds without a change
  (or at once when the holder is empty, i.e. released). The record's timestamps are never trusted;
- every write is a `replace` carrying the resourceVersion read (a racing writer gets 409: re-read and
  decide); a takeover increments `leaseTransitions`;
- the leader renews every retry period; when no renew succeeded for `renew_deadline` it stops leading
  (`on_stopped_leading`) and never leads again (the process exits). `valid()` is already False a
  margin before that, so the executor (asked before every action) stops writing first;
- `release()` (after SIGTERM, once the work stopped) writes holderIdentity "" and leaseDurationSeconds
  1, so a successor takes over at its next retry.
Times in the record are MicroTime: always `%Y-%m-%dT%H:%M:%S.%fZ` (the apiserver rejects anything else).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from kubernetes.client.exceptions import ApiException

from reconciler.clock import Clock
from reconciler.settings import LeaderSettings

log = structlog.get_logger("reconciler.leader")

Record = tuple[str, int, str, str, int]  # holder, duration, acquire, renew, transitions (as read)


class LeaseApi(Protocol):
    """The three calls of `kubernetes.client.CoordinationV1Api` the elector uses."""

    def read_namespaced_lease(self, name: str, namespace: str) -> Any: ...

    def create_namespaced_lease(self, namespace: str, body: Any) -> Any: ...

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any) -> Any: ...


def micro_time(dt: datetime) -> str:
    """A MicroTime as the apiserver parses it: six fraction digits and `Z`, always."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: Any) -> str:
    return micro_time(value) if isinstance(value, datetime) else str(value or "")


def _record(lease: Any) -> Record:
    spec = lease.spec
    if spec is None:
        return ("", 0, "", "", 0)
    return (
        spec.holder_identity or "",
        int(spec.lease_duration_seconds or 0),
        _text(spec.acquire_time),
        _text(spec.renew_time),
        int(spec.lease_transitions or 0),
    )


class LeaderElector:
    def __init__(
        self,
        api: LeaseApi,
        settings: LeaderSettings,
        *,
        namespace: str,
        identity: str,
        clock: Clock,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        margin_s: float | None = None,
    ) -> None:
        self.api = api
        self.name = settings.lease_name
        self.namespace = namespace
        self.identity = identity
        self.clock = clock
        self.lease_duration_s = settings.lease_duration_s
        self.renew_deadline_s = settings.renew_deadline_s
        self.retry_period_s = settings.retry_period_s
        self.margin_s = settings.retry_period_s if margin_s is None else margin_s
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.leading = threading.Event()
        self.done = threading.Event()  # the term is over (lost, or stopped): never leads again
        self.lost = False
        self._lock = threading.Lock()  # one write at a time (the loop's renew, release)
        self._lease: Any = None  # the last Lease read or written (its resourceVersion)
        self._observed: Record | None = None
        self._observed_at = 0.0
        self._renewed_at = -math.inf  # monotonic time a successful acquire/renew was *sent*

    # --- state -----------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    def valid(self) -> bool:
        """Leading, and the last renew is recent enough that the lease certainly still holds."""
        age = self.clock.monotonic() - self._renewed_at
        return self.is_leader and age < self.renew_deadline_s - self.margin_s

    def wait_for_leadership(self, stop: threading.Event, timeout: float | None = None) -> bool:
        """Block until this replica leads (True), or `stop` is set, the term ended or `timeout` seconds
        passed (False)."""
        deadline = None if timeout is None else self.clock.monotonic() + timeout
        while not stop.is_set() and not self.done.is_set():
            left = self.retry_period_s if deadline is None else deadline - self.clock.monotonic()
            if left <= 0:
                break
            if self.clock.wait(self.leading, min(left, self.retry_period_s)) or self.is_leader:
                return True
        return self.is_leader

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        """Acquire, then renew until the deadline is missed or the clock's stop is set. One term."""
        stop = self.clock.stop
        try:
            while not stop.is_set() and not self.try_acquire_or_renew():
                self.clock.wait(stop, self.retry_period_s)
            if stop.is_set():
                return
            self.leading.set()
            log.info("started leading", identity=self.identity, lease=f"{self.namespace}/{self.name}")
            if self.on_started_leading is not None:
                self.on_started_leading()
            while not stop.is_set():
                self.clock.wait(stop, self.retry_period_s)
                if stop.is_set():
                    return
                while not self.try_acquire_or_renew():
                    if self.clock.monotonic() - self._renewed_at >= self.renew_deadline_s:
                        self._lose()
                        return
                    self.clock.wait(stop, self.retry_period_s)
                    if stop.is_set():
                        return
        finally:
            self.done.set()

    def _lose(self) -> None:
        self.lost = True
        self.leading.clear()
        log.error(
            "stopped leading: the lease could not be renewed within the renew deadline",
            identity=self.identity,
            lease=f"{self.namespace}/{self.name}",
            renew_deadline_s=self.renew_deadline_s,
        )
        if self.on_stopped_leading is not None:
            self.on_stopped_leading()

    # --- one attempt -----------------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        sent = self.clock.monotonic()
        with self._lock:
            # Fast path: renew over the cached record; a 409 (or any failure) falls back to a read.
            if self.is_leader and self._lease is not None and self._write(self._lease, sent):
                return True
            try:
                lease = self.api.read_namespaced_lease(self.name, self.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    log.info("cannot read the lease", status=exc.status, reason=exc.reason)
                    return False
                return self._create(sent)
            except Exception as exc:  # a connection error: retried at the next period
                log.info("cannot read the lease", error=f"{type(exc).__name__}: {exc}")
                return False
            record = _record(lease)
            if record != self._observed:
                self._observed, self._observed_at = record, self.clock.monotonic()
            self._lease = lease
            holder, duration = record[0], record[1] or self.lease_duration_s
            if holder and holder != self.identity and self.clock.monotonic() < self._observed_at + duration:
                return False  # held, and renewed within its duration as timed on our own clock
            return self._write(lease, sent)

    def _body(self, lease: Any, *, holder: str, duration: float) -> dict[str, Any]:
        old = _record(lease) if lease is not None else ("", 0, "", "", 0)
        now = micro_time(self.clock.now())
        takeover = old[0] != self.identity
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease.metadata.resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": max(1, math.ceil(duration)),
                "acquireTime": now if takeover or not old[2] else old[2],
                "renewTime": now,
                "leaseTransitions": old[4] + 1 if takeover and lease is not None else old[4],
            },
        }

    def _create(self, sent: float) -> bool:
        body = self._body(None, holder=self.identity, duration=self.lease_duration_s)
        try:
            lease = self.api.create_namespaced_lease(self.namespace, body)
        except Exception as exc:  # 409: another replica created it first; decided at the next read
            log.info("cannot create the lease", error=f"{type(exc).__name__}: {exc}")
            return False
        return self._written(lease, sent)

    def _write(self, lease: Any, sent: float) -> bool:
        body = self._body(lease, holder=self.identity, duration=self.lease_duration_s)
        try:
            written = self.api.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                log.debug("the lease changed since it was read: re-read", identity=self.identity)
            else:
                log.info("cannot write the lease", status=exc.status, reason=exc.reason)
            return False
        except Exception as exc:
            log.info("cannot write the lease", error=f"{type(exc).__name__}: {exc}")
            return False
        return self._written(written, sent)

    def _written(self, lease: Any, sent: float) -> bool:
        self._lease = lease
        self._observed, self._observed_at = _record(lease), self.clock.monotonic()
        self._renewed_at = sent
        return True

    # --- release ---------------------------------------------------------------------------------
    def release(self) -> bool:
        """Give the lease up (holder "", duration 1 s): call once nothing is written any more."""
        with self._lock:
            if not self.is_leader or self._lease is None:
                return False
            self.leading.clear()
            body = self._body(self._lease, holder="", duration=1)
            try:
                self._lease = self.api.replace_namespaced_lease(self.name, self.namespace, body)
            except Exception as exc:  # 409: the lease is not ours any more anyway
                log.warning("cannot release the lease", identity=self.identity, error=str(exc))
                return False
        log.info("released the lease", identity=self.identity, lease=f"{self.namespace}/{self.name}")
        return True
