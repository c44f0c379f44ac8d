"""Kubernetes Events on the ConfigMap that declares a connector: created, created again after a delete
made outside (a Warning), updated, drift repaired, state changed, deleted, restarted, failed, prune
blocked.

I/O edge: an observer (`reconciler.telemetry`) that turns the pipeline's events into Kubernetes Events,
modelled on client-go's `tools/events` recorder. Through events.k8s.io/v1, or core/v1 once events.k8s.io
answers 403 or 404 (an old server, or RBAC for the core group only).

- `__call__` only translates and queues: the API calls are made by one background thread, and a full
  queue (`queue_size`) drops the Event and counts it (`dropped`), never blocks the pass.
- Deduplication: the key is (type, action, reason, regarding, related), with reportingController and
  reportingInstance fixed per recorder; `related` is the connector (or the cluster) the Event is about,
  kept in process only, so two connectors of one ConfigMap stay two Events. A repeat of a key within 6
  minutes of its last occurrence becomes a PATCH of `series` (count, lastObservedTime) on events.k8s.io,
  of `count`/`lastTimestamp` on core/v1; the note is not part of the key (the server refuses a new note).
- Rate limit: a token bucket per regarded ConfigMap (burst 25, then 1 per 5 minutes) for every API call,
  so a ConfigMap broken in a loop cannot flood the API server; an occurrence refused by it is counted
  (`limited`) and, for an existing series, folded into the series count sent with the next PATCH.
- Notes pass through the run's `Redactor` (before and after the whitespace is collapsed), then are cut in
  the middle to 1024 bytes; reason and action are constants, reportingInstance is cut to 128 characters.
- `eventTime` and `series.lastObservedTime` are MicroTime: `%Y-%m-%dT%H:%M:%S.%fZ` exactly (the client's
  own `datetime.isoformat()` drops the fraction at .000000, which the API server rejects).
"""

from __future__ import annotations

import contextlib
import functools
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.core.recreation import FIGHT_COUNT
from reconciler.core.redaction import Redactor
from reconciler.model import (
    ActionEvent,
    ActionKind,
    ConfigMapDoc,
    ConnectorPlan,
    DesiredState,
    PassEvent,
)

log = structlog.get_logger("reconciler.events")

REPORTING_CONTROLLER = "connect-reconciler"
NOTE_LIMIT = 1024  # bytes, as the API server counts them (Go's len)
INSTANCE_LIMIT = 128
BURST = 25
REFILL_S = 300.0  # one more API call per regarded object every 5 minutes once the burst is spent
SERIES_FINISH_S = 360.0  # a key not seen for 6 minutes starts a new Event (client-go: finishTime)
MAX_SERIES = 4096  # dedup cache entries kept; the least recently seen goes first
_TIMEOUT = (5.0, 10.0)
_CUT = "..."
_NAME_LIMIT = 253 - 1 - 20  # the ConfigMap's name, then "." and up to 20 hex digits

NORMAL = "Normal"
WARNING = "Warning"

_VERB = {
    ActionKind.CREATE: "Create",
    ActionKind.UPDATE: "Update",
    ActionKind.PAUSE: "Pause",
    ActionKind.RESUME: "Resume",
    ActionKind.STOP: "Stop",
    ActionKind.DELETE: "Delete",
    ActionKind.RESTART: "Restart",
}
_TARGET = {ActionKind.PAUSE: "PAUSED", ActionKind.RESUME: "RUNNING", ActionKind.STOP: "STOPPED"}


class MicroTime(datetime):
    """A datetime the Kubernetes client serialises as a MicroTime: six fraction digits and `Z`."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return self.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @classmethod
    def of(cls, moment: datetime) -> MicroTime:
        m = moment.astimezone(UTC)
        return cls(m.year, m.month, m.day, m.hour, m.minute, m.second, m.microsecond, tzinfo=UTC)


class Rfc3339Time(datetime):
    """A core/v1 `Time` (whole seconds, `Z`)."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return self.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @classmethod
    def of(cls, moment: datetime) -> Rfc3339Time:
        m = moment.astimezone(UTC)
        return cls(m.year, m.month, m.day, m.hour, m.minute, m.second, tzinfo=UTC)


def cut_middle(text: str, limit: int = NOTE_LIMIT) -> str:
    """`text` if it fits in `limit` UTF-8 bytes, else its head and tail around `...` (kopf's way)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(_CUT)
    tail = room // 2
    head = data[: room - tail].decode("utf-8", "ignore")
    return head + _CUT + data[len(data) - tail :].decode("utf-8", "ignore")


class Clock(Protocol):
    """What the recorder needs of `reconciler.clock.Clock` (a sibling layer): a `SystemClock` or a fake."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class _SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class EventsApi(Protocol):
    def create_namespaced_event(self, namespace: str, body: Any, **kwargs: Any) -> Any: ...

    def patch_namespaced_event(self, name: str, namespace: str, body: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Regarding:
    namespace: str
    name: str
    uid: str

    def reference(self) -> dict[str, str]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


@dataclass(frozen=True, slots=True)
class Emit:
    """One Event to record, as queued (its note not yet scrubbed)."""

    type: str
    reason: str
    action: str
    regarding: Regarding
    related: str  # the connector (cluster/name) or the cluster it is about: part of the key, never sent
    note: str

    @property
    def key(self) -> tuple[str, str, str, Regarding, str]:
        return (self.type, self.action, self.reason, self.regarding, self.related)


@dataclass(slots=True)
class _Series:
    item: Emit  # the first occurrence (what a re-create after expiry records)
    name: str
    namespace: str
    core: bool  # recorded through core/v1
    count: int
    sent: int  # the count the API server has
    last_seen: float  # monotonic
    last_time: datetime  # wall time of the last occurrence


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


def regarding(doc: ConfigMapDoc | None) -> Regarding | None:
    """The ConfigMap as an Event's object, or None when it is no API server object (files: no uid)."""
    if doc is None or not doc.uid or not doc.namespace or not doc.name:
        return None
    return Regarding(doc.namespace, doc.name, doc.uid)


def _keys(plan: ConnectorPlan, limit: int = 10) -> str:
    keys = sorted({c.key for c in plan.changes})
    if not keys:
        return "config rewritten"
    shown = ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
    return f"changed {shown}"


class EventRecorder:
    """An observer recording Kubernetes Events about the source ConfigMaps (see the module docstring)."""

    def __init__(
        self,
        api: client.ApiClient | None,
        *,
        instance: str,
        redactor: Callable[[], Redactor],
        clock: Clock | None = None,
        queue_size: int = 1000,
        events_api: EventsApi | None = None,
        core_api: EventsApi | None = None,
        idle_s: float = 0.5,
    ) -> None:
        self._events = events_api if events_api is not None else cast(EventsApi, client.EventsV1Api(api))
        self._core = core_api if core_api is not None else cast(EventsApi, client.CoreV1Api(api))
        self.instance = instance[:INSTANCE_LIMIT]
        self._redactor = redactor
        self._clock: Clock = clock or _SystemClock()
        self._queue: queue.Queue[Emit | None] = queue.Queue(maxsize=max(1, queue_size))
        self._idle_s = idle_s
        self._lock = threading.Lock()
        self.emitted = 0  # API writes that succeeded (creates and series PATCHes)
        self.dropped = 0  # Events lost to a full queue (or queued after close)
        self.failures = 0  # API calls or translations that failed
        self.limited = 0  # occurrences the rate limiter held back
        self.core_only = False  # events.k8s.io refused: core/v1 from then on
        # Only the pipeline's thread touches these: the last resourceVersion each connector was in sync at.
        self._applied: dict[tuple[str, str], str | None] = {}
        # Only the worker touches these.
        self._series: dict[tuple[str, str, str, Regarding, str], _Series] = {}
        self._buckets: dict[Regarding, _Bucket] = {}
        self._logged: set[object] = set()
        self._seq = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()

    # -- the pipeline's side: translate and queue, fast, never raising ------------------------------

    def __call__(self, event: object) -> None:
        try:
            items = list(self.translate(event))
        except Exception as exc:  # an Event must never fail a pass
            self._count("failures")
            log.warning("could not translate an event", error=type(exc).__name__)
            return
        for item in items:
            if self._closing.is_set():
                self._count("dropped")
                continue
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self._count("dropped")

    def translate(self, event: object) -> Iterable[Emit]:
        """The Events an `ActionEvent` or a `PassEvent` (reconciler.telemetry) asks for; others: none."""
        if isinstance(event, PassEvent):
            return self._pass(event)
        if isinstance(event, ActionEvent):
            return self._action(event)
        return []

    def _action(self, event: ActionEvent) -> list[Emit]:
        reg = regarding(event.source)
        if event.dry_run or event.outcome is None or event.source is None or reg is None:
            return []
        action, outcome, plan = event.action, event.outcome, event.plan
        conn = (action.cluster, action.connector)
        related = f"{action.cluster}/{action.connector}"
        what = f"connector {action.connector} on cluster {action.cluster}"
        verb = _VERB[action.kind]
        version = event.source.resource_version
        if not outcome.ok:
            status = f" (HTTP {outcome.http_status})" if outcome.http_status else ""
            message = " ".join(outcome.message.split()) or "no message"
            note = f"{verb} of {what} failed{status}: {message}"
            return [Emit(WARNING, "ConnectorFailed", verb, reg, related, note)]
        match action.kind:
            case ActionKind.CREATE:
                self._applied[conn] = version
                state = action.initial_state
                extra = f" ({state.value})" if state is not None and state is not DesiredState.RUNNING else ""
                if plan.recreated and plan.reason:
                    # A series keeps its first note: the repeats get their own reason, so the Event that
                    # names the likely cause (another controller) is one `kubectl describe` shows.
                    reason = (
                        "ConnectorRecreated" if plan.recreated < FIGHT_COUNT else "ConnectorDeletedRepeatedly"
                    )
                    note = f"Created {what} again{extra}: {plan.reason}"
                    return [Emit(WARNING, reason, verb, reg, related, note)]
                return [Emit(NORMAL, "ConnectorCreated", verb, reg, related, f"Created {what}{extra}")]
            case ActionKind.UPDATE:
                drift = version is not None and conn in self._applied and self._applied[conn] == version
                self._applied[conn] = version
                if drift:
                    note = f"Repaired drift of {what}, changed outside its ConfigMap: {_keys(plan)}"
                    return [Emit(NORMAL, "DriftRepaired", verb, reg, related, note)]
                return [
                    Emit(NORMAL, "ConnectorUpdated", verb, reg, related, f"Updated {what}: {_keys(plan)}")
                ]
            case ActionKind.PAUSE | ActionKind.RESUME | ActionKind.STOP:
                live = plan.live_state or "unknown"
                note = f"State of {what}: {live} -> {_TARGET[action.kind]}"
                return [Emit(NORMAL, "ConnectorStateChanged", verb, reg, related, note)]
            case ActionKind.DELETE:
                self._applied.pop(conn, None)
                why = f": {plan.reason}" if plan.reason else ""
                return [Emit(NORMAL, "ConnectorDeleted", verb, reg, related, f"Deleted {what}{why}")]
            case ActionKind.RESTART:
                why = f": {plan.restart}" if plan.restart else ""
                note = f"Restarted the failed connector or tasks of {what}{why}"
                return [Emit(NORMAL, "ConnectorRestarted", verb, reg, related, note)]
        return []

    def _pass(self, event: PassEvent) -> list[Emit]:
        if event.report.dry_run:
            return []
        connectors = event.report.plan.connectors
        for cp in connectors:
            doc = event.sources.get(cp.source.configmap) if cp.source is not None else None
            writes = any(a.kind in (ActionKind.CREATE, ActionKind.UPDATE) for a in cp.actions)
            if doc is not None and not writes:  # in sync with this version (writes: their own events)
                self._applied[(cp.cluster, cp.connector)] = doc.resource_version
        items: list[Emit] = []
        for cluster, why in sorted(event.blocked.items()):
            refs = sorted(
                {
                    cp.source.configmap
                    for cp in connectors
                    if cp.cluster == cluster
                    and cp.source is not None
                    and cp.source.configmap in event.sources
                }
            )
            note = f"Prunes on cluster {cluster} are blocked: {' '.join(why.split())}"
            for ref in refs:
                reg = regarding(event.sources[ref])
                if reg is not None:
                    items.append(Emit(WARNING, "PruneBlocked", "Prune", reg, cluster, note))
        return items

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    # -- the worker: dedup, rate limit, scrub, API calls ------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued Event has been handled (tests; True if it was within `timeout`)."""
        done = threading.Event()

        def join() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting Events, record what is queued (and pending series counts) within `timeout`."""
        self._closing.set()
        with contextlib.suppress(queue.Full):  # wake the worker; a full queue wakes it anyway
            self._queue.put_nowait(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._idle_s)
            except queue.Empty:
                self._guard(self._flush_pending)
                if self._closing.is_set():
                    return
                continue
            try:
                if item is not None:
                    self._guard(functools.partial(self._record, item))
            finally:
                self._queue.task_done()
            if self._closing.is_set() and self._queue.empty():
                self._guard(self._flush_pending)
                return

    def _guard(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # the worker must outlive any one Event
            self._count("failures")
            self._log_once(("error", type(exc).__name__), "could not record an event", type(exc).__name__)

    def _log_once(self, key: object, message: str, error: str, status: int | None = None) -> None:
        level = log.debug if key in self._logged else log.warning
        self._logged.add(key)
        level(message, error=error, status=status)

    def _take(self, reg: Regarding, now: float) -> bool:
        bucket = self._buckets.get(reg)
        if bucket is None:
            if len(self._buckets) >= MAX_SERIES:  # forget the buckets that have refilled
                for old in [r for r, b in self._buckets.items() if now - b.at >= BURST * REFILL_S]:
                    del self._buckets[old]
            bucket = self._buckets[reg] = _Bucket(float(BURST), now)
        bucket.tokens = min(float(BURST), bucket.tokens + (now - bucket.at) / REFILL_S)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def _record(self, item: Emit) -> None:
        now = self._clock.monotonic()
        wall = self._clock.now()
        self._finish(now)
        series = self._series.get(item.key)
        if series is not None:
            series.count += 1
            series.last_seen, series.last_time = now, wall
            if self._take(item.regarding, now):
                self._patch(item, series)
            else:
                self._count("limited")
            return
        if not self._take(item.regarding, now):
            self._count("limited")
            return
        self._create(item, wall, now)

    def _note(self, text: str) -> str:
        redactor = self._redactor()
        once = " ".join(redactor.scrub(text).split())
        return cut_middle(redactor.scrub(once))

    def _name(self, reg: Regarding, wall: datetime) -> str:
        self._seq = (self._seq + 1) % 0x10000
        stamp = int(wall.timestamp() * 1_000_000) * 0x10000 + self._seq
        return f"{reg.name[:_NAME_LIMIT]}.{stamp:x}{secrets.token_hex(1)}"

    def _create(self, item: Emit, wall: datetime, now: float) -> None:
        note = self._note(item.note)
        reg = item.regarding
        name = self._name(reg, wall)
        core = self.core_only
        try:
            if not core:
                try:
                    self._events.create_namespaced_event(
                        reg.namespace,
                        self._v1_body(item, name, note, wall),
                        _request_timeout=_TIMEOUT,
                    )
                except ApiException as exc:
                    if exc.status not in (403, 404):
                        raise
                    self._log_once(
                        "fallback", "events.k8s.io refused: using core/v1 events", "ApiException", exc.status
                    )
                    self.core_only = core = True
            if core:
                self._core.create_namespaced_event(
                    reg.namespace,
                    self._core_body(item, name, note, wall),
                    _request_timeout=_TIMEOUT,
                )
        except ApiException as exc:
            self._count("failures")
            self._log_once(("create", exc.status), "could not create an event", "ApiException", exc.status)
            return
        if len(self._series) >= MAX_SERIES:
            oldest = min(self._series, key=lambda k: self._series[k].last_seen)
            del self._series[oldest]
        self._series[item.key] = _Series(item, name, reg.namespace, core, 1, 1, now, wall)
        self._count("emitted")

    def _patch(self, item: Emit, series: _Series) -> None:
        if series.core:
            api = self._core
            body: dict[str, Any] = {"count": series.count, "lastTimestamp": Rfc3339Time.of(series.last_time)}
        else:
            api = self._events
            body = {"series": {"count": series.count, "lastObservedTime": MicroTime.of(series.last_time)}}
        try:
            api.patch_namespaced_event(
                series.name,
                series.namespace,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:  # expired (Events live an hour): start a new one
                self._series.pop(item.key, None)
                self._create(item, series.last_time, series.last_seen)
                return
            self._count("failures")
            self._log_once(("patch", exc.status), "could not update an event", "ApiException", exc.status)
            return
        series.sent = series.count
        self._count("emitted")

    def _flush_pending(self) -> None:
        """Send the series counts the rate limiter held back, where a token is free again."""
        now = self._clock.monotonic()
        for series in list(self._series.values()):
            if series.count > series.sent and self._take(series.item.regarding, now):
                self._patch(series.item, series)
        self._finish(now)

    def _finish(self, now: float) -> None:
        """End the series not seen for SERIES_FINISH_S: their count is sent if a token allows, and their
        next occurrence starts a new Event."""
        for key in [k for k, s in self._series.items() if now - s.last_seen > SERIES_FINISH_S]:
            series = self._series.pop(key)
            if series.count > series.sent and self._take(series.item.regarding, now):
                self._patch(series.item, series)

    def _v1_body(self, item: Emit, name: str, note: str, wall: datetime) -> dict[str, Any]:
        return {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": item.regarding.namespace},
            "eventTime": MicroTime.of(wall),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "action": item.action,
            "reason": item.reason,
            "type": item.type,
            "regarding": item.regarding.reference(),
            "note": note,
        }

    def _core_body(self, item: Emit, name: str, note: str, wall: datetime) -> dict[str, Any]:
        stamp = Rfc3339Time.of(wall)
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": item.regarding.namespace},
            "involvedObject": item.regarding.reference(),
            "reason": item.reason,
            "message": note,
            "type": item.type,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": REPORTING_CONTROLLER},
            "reportingComponent": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "action": item.action,
        }
