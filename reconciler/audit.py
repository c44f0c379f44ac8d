"""The audit log: an observer (`telemetry.Observer`) that writes a record for every action and sends it on.

Edge (a file, the network, a thread). The records themselves are made by the pure `core/audit.py`;
this module delivers each one to up to three destinations:

- the log stream, always: structlog logger `reconciler.audit`, event `audit`, the record as fields
  (at `log_level`, info by default: note the reconciler's default log level is warning);
- `file`: one JSON line per record, appended and flushed (one unbuffered `write` per line on a file
  opened once with O_APPEND). A failing write is counted in `write_errors` and logged once;
- `sink_url` (`$K_SINK` from a Knative SinkBinding; `from_environ` reads it, `$K_CE_OVERRIDES` and
  `$K_CA_CERTS`): a CloudEvent 1.0 per record, HTTP binary content mode, with `id` = auditID,
  `source` = `/connect-reconciler/<identity>`, `type` = `io.connectreconciler.connector.<verb>.v1`,
  `subject` = the connector, extension `connectcluster`, plus the overrides' extensions.

Delivery to the sink is at least once, in order, from one background thread fed by a bounded queue:
`__call__` never blocks (nor waits for the thread: it appends under a lock the thread holds only to
pop). A refused connection, a timeout, a 5xx, a 408 or a 429 is retried with exponential backoff,
for as long as it takes, so a long outage fills the queue; once it is full the NEWEST record is
dropped (the queued ones keep their order and are delivered first; the same choice as kube-apiserver's
non-blocking audit webhook), and counted in `dropped`. Any other 4xx is permanent: the record is
dropped and counted. A sink that took a request whose answer was lost gets it again: receivers
deduplicate by `id` (the CloudEvents uniqueness rule: `source` + `id`). `close(timeout)` delivers what
is queued for up to `timeout` seconds; what is still queued then is dropped and counted.

Counters (read by the metrics helper): `sent` (accepted by the sink), `failures` (delivery attempts that
failed), `dropped` (records that will never reach the sink), `write_errors` (file writes that failed),
`pending` (records queued now).
"""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Final

import httpx
import structlog

from reconciler.clock import Clock, SystemClock
from reconciler.core.audit import approval_record, audit_record, pass_records
from reconciler.core.redaction import Redactor
from reconciler.errors import ConfigError
from reconciler.telemetry import ActionEvent, Event, PassEvent

if TYPE_CHECKING:
    from cloudevents.core.bindings.http import HTTPMessage
    from cloudevents.core.v1.event import CloudEvent

log = structlog.get_logger("reconciler.audit")

SOURCE_PREFIX: Final = "/connect-reconciler/"
TYPE_TEMPLATE: Final = "io.connectreconciler.connector.{verb}.v1"
CLUSTER_EXTENSION: Final = "connectcluster"
DEFAULT_QUEUE_SIZE: Final = 1000
# Attributes K_CE_OVERRIDES may not replace: the required ones (the SDK's REQUIRED_ATTRIBUTES), the
# optional ones we set, and `data`.
_OURS: Final = frozenset({"time", "subject", "datacontenttype", "dataschema", "data"})


def _reserved() -> frozenset[str]:
    # The SDK (and pydantic under it, ~7 MB) is imported only where a sink is configured.
    from cloudevents.core.v1.event import REQUIRED_ATTRIBUTES  # noqa: PLC0415

    return frozenset(REQUIRED_ATTRIBUTES) | _OURS


_RETRIED_STATUS: Final = frozenset({408, 429})


def _valid_extension(name: str) -> bool:
    return bool(name) and name.isascii() and name.isalnum() and name == name.lower()


def parse_ce_overrides(text: str | None) -> dict[str, Any]:
    """`$K_CE_OVERRIDES` (`{"extensions": {"name": value}}`) -> the extensions to add; ConfigError if it
    is not JSON of that shape. Names must be lowercase letters and digits (CloudEvents 1.0)."""
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"K_CE_OVERRIDES is not JSON: {exc}") from None
    extensions = doc.get("extensions", {}) if isinstance(doc, dict) else None
    if not isinstance(extensions, dict):
        raise ConfigError('K_CE_OVERRIDES must be {"extensions": {...}}')
    return dict(extensions)


def _checked_extensions(extensions: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    reserved = _reserved() if extensions else _OURS
    for name, value in extensions.items():
        if not isinstance(name, str) or not _valid_extension(name) or name in reserved:
            raise ConfigError(
                f"CloudEvent extension {name!r}: names are lowercase letters and digits, not a core attribute"
            )
        out[name] = value if isinstance(value, str | int | bool) else json.dumps(value)
    return out


def _verify(ca_file: str | None, ca_certs: str | None) -> ssl.SSLContext | bool:
    """The TLS trust for the sink: the system's, plus a CA file, plus PEM text (`$K_CA_CERTS`)."""
    if not ca_file and not ca_certs:
        return True
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
        if ca_certs:
            context.load_verify_locations(cadata=ca_certs)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"the audit sink's CA certificates cannot be loaded: {exc}") from None
    return context


class AuditLog:
    """An observer: `AuditLog(identity=...)(event)` for each `ActionEvent` / `PassEvent`; `close()` at the
    end. `redactor_ref` is called for every record, so the secrets of the current pass are the ones
    scrubbed (the watcher opens a fresh Runtime, and redactor, each pass). ConfigError from the
    constructor when the file cannot be opened or an option is wrong; never an exception afterwards."""

    def __init__(
        self,
        *,
        identity: str,
        redactor_ref: Callable[[], Redactor] = Redactor,
        file: str | None = None,
        sink_url: str | None = None,
        ce_overrides: Mapping[str, Any] | None = None,
        ca_file: str | None = None,
        ca_certs: str | None = None,
        clock: Clock | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        queue_size: int = DEFAULT_QUEUE_SIZE,
        request_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
        log_level: str = "info",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not identity:
            raise ConfigError("the audit log needs an identity (this replica's name)")
        self.identity = identity
        self._redactor_ref = redactor_ref
        self._clock: Clock = clock or SystemClock()
        self._new_id = new_id
        self._emit_log = getattr(log, log_level)
        self._extensions = _checked_extensions(ce_overrides or {})
        self._lock = threading.Lock()  # counters, the queue and the file
        self._ready = threading.Condition(self._lock)
        self._pending: deque[tuple[dict[str, Any], datetime]] = deque()
        self._queue_size = max(1, queue_size)
        self._closing = False
        self._abort = threading.Event()  # close's deadline passed: stop retrying
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._down = False  # the sink failed last time: log the outage once, and its end
        self.sent = self.dropped = self.failures = self.write_errors = 0
        self._file: IO[bytes] | None = None
        self._file_failed = False
        self.file = file
        if file:
            try:
                self._file = open(file, "ab", buffering=0)  # noqa: SIM115 - kept open until close()
            except OSError as exc:
                raise ConfigError(f"cannot open the audit file {file}: {exc.strerror or exc}") from None
        self.sink_url = sink_url or None
        self._http: httpx.Client | None = None
        self._thread: threading.Thread | None = None
        if self.sink_url:
            self._http = httpx.Client(
                timeout=request_timeout_s,
                verify=_verify(ca_file, ca_certs),
                transport=transport,
                headers={"user-agent": "connect-reconciler-audit"},
            )
            self._thread = threading.Thread(target=self._run, name="audit-sink", daemon=True)
            self._thread.start()

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], *, identity: str, file: str | None = None, **options: Any
    ) -> AuditLog:
        """The sink a Knative SinkBinding injects: `K_SINK`, `K_CE_OVERRIDES` and `K_CA_CERTS` (PEM text;
        a path is accepted too)."""
        ca = environ.get("K_CA_CERTS") or None
        pem = ca if ca and "-----BEGIN" in ca else None
        return cls(
            identity=identity,
            file=file,
            sink_url=environ.get("K_SINK") or None,
            ce_overrides=parse_ce_overrides(environ.get("K_CE_OVERRIDES")),
            ca_certs=pem,
            ca_file=ca if ca and pem is None else None,
            **options,
        )

    # The observer ------------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        try:
            now = self._clock.now()
            redactor = self._redactor_ref()
            if isinstance(event, ActionEvent):
                records = [
                    audit_record(
                        event, now=now, identity=self.identity, redactor=redactor, audit_id=self._new_id()
                    )
                ]
            elif isinstance(event, PassEvent):
                records = pass_records(
                    event, now=now, identity=self.identity, redactor=redactor, new_id=self._new_id
                )
            else:
                return
            for record in records:
                self.emit(record, now)
        except Exception as exc:  # an audit sink must never fail a pass
            log.warning("audit record not made", error=f"{type(exc).__name__}: {exc}")

    def approval(
        self,
        cluster: str,
        stamp: str,
        *,
        approved_by: str | None = None,
        blocked_reason: str | None = None,
    ) -> dict[str, Any]:
        """Record `approve-deletes` on `cluster`; returns the record."""
        now = self._clock.now()
        record = approval_record(
            cluster,
            stamp,
            self.identity,
            now=now,
            redactor=self._redactor_ref(),
            audit_id=self._new_id(),
            approved_by=approved_by,
            blocked_reason=blocked_reason,
        )
        self.emit(record, now)
        return record

    def emit(self, record: dict[str, Any], now: datetime) -> None:
        """One finished record (already scrubbed) to every destination. Never raises, never blocks."""
        self._emit_log("audit", **record)
        if self._file is not None:
            self._write_line(record)
        if self._thread is not None:
            with self._lock:
                if self._closing or len(self._pending) >= self._queue_size:
                    self.dropped += 1  # the newest goes: the queued ones keep their order
                    return
                self._pending.append((record, now))
                self._ready.notify()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # The file ----------------------------------------------------------------------------------------

    def _write_line(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._file is None:
                return
            try:
                view = memoryview(line)
                while view:  # a raw file may write less than asked
                    written = self._file.write(view)
                    if not written:
                        raise OSError("the audit file took no bytes")
                    view = view[written:]
            except (OSError, ValueError) as exc:
                self.write_errors += 1
                if not self._file_failed:
                    self._file_failed = True
                    log.error(
                        "cannot write the audit file; records go to the log only",
                        file=self.file,
                        error=str(exc),
                    )

    # The sink ----------------------------------------------------------------------------------------

    def cloudevent(self, record: Mapping[str, Any], now: datetime) -> CloudEvent:
        """The CloudEvent 1.0 carrying `record`."""
        attributes: dict[str, Any] = {
            **self._extensions,
            "id": record["auditID"],
            "source": SOURCE_PREFIX + self.identity,
            "type": TYPE_TEMPLATE.format(verb=record["verb"]),
            "time": now,
            "datacontenttype": "application/json",
            CLUSTER_EXTENSION: record["objectRef"]["connectCluster"],
        }
        if record["objectRef"].get("connector"):
            attributes["subject"] = record["objectRef"]["connector"]
        from cloudevents.core.v1.event import CloudEvent  # noqa: PLC0415 - see _reserved

        return CloudEvent(attributes, dict(record))

    def message(self, record: Mapping[str, Any], now: datetime) -> HTTPMessage:
        from cloudevents.core.bindings.http import to_binary_event  # noqa: PLC0415 - see _reserved

        return to_binary_event(self.cloudevent(record, now))

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._ready.wait()
                if not self._pending or self._abort.is_set():
                    return
                record, now = self._pending[0]  # left queued while in flight: `pending` counts it
            try:
                delivered = self._deliver(self.message(record, now))
            except Exception as exc:  # a record the SDK refuses: never kill the thread
                log.error("audit record cannot be sent", auditID=record.get("auditID"), error=str(exc))
                delivered = False
            with self._lock:
                if self._pending and self._pending[0][0] is record:
                    self._pending.popleft()
                if not delivered:
                    self.dropped += 1

    def _deliver(self, message: HTTPMessage) -> bool:
        """POST until accepted (True), refused for good or given up at close's deadline (False)."""
        assert self._http is not None and self.sink_url is not None
        delay, longest = self._backoff
        while True:
            retry, why = False, ""
            try:
                response = self._http.post(self.sink_url, headers=message.headers, content=message.body)
            except httpx.HTTPError as exc:
                retry, why = True, f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    with self._lock:
                        self.sent += 1
                    if self._down:
                        self._down = False
                        log.warning("audit sink reachable again", sink=self.sink_url)
                    return True
                retry = response.status_code >= 500 or response.status_code in _RETRIED_STATUS
                why = f"HTTP {response.status_code}"
            with self._lock:
                self.failures += 1
            if not retry:
                log.error("audit sink refused a record; dropped", sink=self.sink_url, error=why)
                return False
            if not self._down:
                self._down = True
                log.warning("audit sink unavailable; retrying", sink=self.sink_url, error=why)
            if self._abort.wait(delay):
                return False
            delay = min(delay * 2, longest)

    # Shutdown ----------------------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to `timeout` seconds (plus one request in flight), then drop and
        count the rest; close the file. Later records go to the log only."""
        with self._lock:
            self._closing = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
            if self._thread.is_alive():
                self._abort.set()
                self._thread.join()
            with self._lock:
                self.dropped += len(self._pending)
                self._pending.clear()
        if self._http is not None:
            self._http.close()
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    self.write_errors += 1
                self._file = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog(identity={self.identity!r}, file={self.file!r}, sink={self.sink_url!r})"


__all__ = ["AuditLog", "parse_ce_overrides"]
