"""Data that flows between the pipeline's stages: frozen dataclasses and str-valued enums.

Pure: no I/O. Every stage takes these and returns these, so each stage can be tested on plain values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEFAULT_CLUSTER = "default"


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a connector was declared: a ConfigMap (namespace/name) and one of its data keys."""

    configmap: str
    key: str | None = None

    def __str__(self) -> str:
        where = f"ConfigMap {self.configmap}"
        if self.key is not None:
            where += f" key {self.key}"
        return where


@dataclass(frozen=True, slots=True)
class ConfigMapDoc:
    """A ConfigMap as the reconciler sees it, whichever source (files, API server, hook) it came from."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    data: Mapping[str, str]
    origin: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    uid: str | None = None  # the API server's; None for files
    resource_version: str | None = None
    # Who last wrote `data`, from managedFields (kustomize-controller for Flux, kubectl-edit, ...), and when.
    changed_by: str | None = None
    changed_at: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """One data key of a selected ConfigMap: a jq program that should yield one connector."""

    source: SourceRef
    program: str
    enabled: bool


class DesiredState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RenderInputs:
    """Everything a template may read. Loaded at the edge (clients/inputs.py), passed into the pure core.

    `secret_values` holds every value known to be secret so any output can be scrubbed of it.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secret_values: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AutoRestart:
    """A connector's auto-restart policy (Strimzi's): restart it when it or a task is FAILED, backing off
    `min(n*n + n, 60)` minutes after the n-th restart; `max_restarts` None means no limit. Defined here,
    not in `core.restarts`, because `DesiredConnector` carries it and the model sits below the core."""

    enabled: bool = True
    max_restarts: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "maxRestarts": self.max_restarts}

    @classmethod
    def from_json(cls, data: Any) -> AutoRestart:
        """The inverse of `to_json`; ValueError (one line) for anything else."""
        if not isinstance(data, Mapping) or set(data) - {"enabled", "maxRestarts"}:
            raise ValueError(f"not an auto-restart policy: {data!r}")
        enabled, limit = data.get("enabled", True), data.get("maxRestarts")
        if not isinstance(enabled, bool) or not (limit is None or _is_count(limit)):
            raise ValueError(f"not an auto-restart policy: {data!r}")
        return cls(enabled, limit)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_time(value: Any) -> bool:
    return value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    )


@dataclass(frozen=True, slots=True)
class RestartRecord:
    """One connector's auto-restart counter, kept between passes (in the ownership ledger). Times are epoch
    seconds. `RestartRecord()` is the state of a connector with nothing to remember: no need to store it."""

    count: int = 0  # restarts since the last reset, counted when planned (failed REST calls included)
    last_restart: float | None = None
    last_failure: float | None = None  # the last pass that saw it FAILED: the reset is measured from here

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "lastRestart": self.last_restart, "lastFailure": self.last_failure}

    @classmethod
    def from_json(cls, data: Any) -> RestartRecord:
        """The inverse of `to_json` (missing keys take their defaults); ValueError (one line) for anything
        else, so a hand-edited ledger entry is refused rather than read as a fresh counter."""
        keys = {"count", "lastRestart", "lastFailure"}
        if not isinstance(data, Mapping) or set(data) - keys:
            raise ValueError(f"not a restart record: {data!r}")
        count, last_restart, last_failure = (
            data.get("count", 0),
            data.get("lastRestart"),
            data.get("lastFailure"),
        )
        if not _is_count(count) or not _is_time(last_restart) or not _is_time(last_failure):
            raise ValueError(f"not a restart record: {data!r}")
        return cls(
            count,
            None if last_restart is None else float(last_restart),
            None if last_failure is None else float(last_failure),
        )


@dataclass(frozen=True, slots=True)
class DesiredConnector:
    """A rendered, normalised connector: `config` is exactly what Connect would store (strings, with `name`)."""

    name: str
    config: Mapping[str, str]
    state: DesiredState
    cluster: str
    enabled: bool
    source: SourceRef
    secret_keys: frozenset[str] = frozenset()
    auto_restart: AutoRestart | None = None  # None: the reconciler's default policy
    # Known only by name: the hook's declaration index said what this unchanged spec declares, and it
    # was not rendered (`pass_memory.DeclarationIndex`). Such a connector is never planned or written.
    placeholder: bool = False


@dataclass(frozen=True, slots=True)
class LiveConnector:
    """A connector as Kafka Connect reports it. `state` is None when Connect has no status for it yet."""

    name: str
    config: Mapping[str, str]
    state: str | None
    tasks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterState:
    """What one Connect cluster holds, from one observation."""

    cluster: str
    connectors: Mapping[str, LiveConnector]
    version: str | None = None
    # None: the whole cluster was listed. A targeted pass reads only some connectors by name: a name
    # outside `observed` is unknown, never absent — so it is neither written, pruned nor forgotten.
    observed: frozenset[str] | None = None

    def sees(self, name: str) -> bool:
        return self.observed is None or name in self.observed

    def absent(self, name: str) -> bool:
        """Connect showed no such connector: absent from a listing, or its own 404 to a read by name."""
        return self.sees(name) and name not in self.connectors


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    DELETE = "delete"
    RESTART = "restart"  # the FAILED connector and/or tasks only (auto-restart)


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One key that differs. With `secret`, `before` and `after` are masks already (`redaction.mask`, as
    `planning.diff_config` makes them): every output shows them as they are."""

    key: str
    before: str | None
    after: str | None
    secret: bool


class CreateMethod(StrEnum):
    """How a create goes over the wire, decided in planning from the worker's Kafka version."""

    POST_INITIAL_STATE = "post"  # POST /connectors with initial_state (Kafka >= 3.7, KIP-980)
    PUT_THEN_STATE = "put"  # PUT /connectors/{name}/config, then pause or stop if not running


_STATE_VERB = {DesiredState.PAUSED: "pause", DesiredState.STOPPED: "stop"}


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    connector: str
    cluster: str
    config: Mapping[str, str] | None = None
    initial_state: DesiredState | None = None
    create_via: CreateMethod | None = None

    @property
    def wire_steps(self) -> tuple[str, ...]:
        """The requests this action sends when all goes well, as a dry run shows them."""
        path = f"/connectors/{self.connector}"
        match self.kind:
            case ActionKind.CREATE if self.create_via is CreateMethod.POST_INITIAL_STATE:
                state = (self.initial_state or DesiredState.RUNNING).value.upper()
                return (f"POST /connectors (initial_state {state})",)
            case ActionKind.CREATE:
                verb = _STATE_VERB.get(self.initial_state or DesiredState.RUNNING)
                return (f"PUT {path}/config",) + ((f"PUT {path}/{verb}",) if verb else ())
            case ActionKind.UPDATE:
                return (f"PUT {path}/config",)
            case ActionKind.DELETE:
                return (f"DELETE {path}",)
            case ActionKind.RESTART:
                return (f"POST {path}/restart?includeTasks=true&onlyFailed=true",)
            case _:
                return (f"PUT {path}/{self.kind.value}",)


@dataclass(frozen=True, slots=True)
class Problem:
    """A failure tied to one ConfigMap key or one connector; reported, never fatal to the others."""

    message: str
    source: SourceRef | None = None
    connector: str | None = None
    cluster: str | None = None
    retryable: bool = False  # transient (Connect unreachable, 5xx, 409 after retries): worth running again

    def __str__(self) -> str:
        parts = []
        if self.source is not None:
            parts.append(str(self.source))
        if self.connector is not None:
            parts.append(f"connector {self.connector}")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


@dataclass(frozen=True, slots=True)
class ConnectorPlan:
    """Everything the reconciler intends for one connector, with the reasons shown in a plan."""

    connector: str
    cluster: str
    source: SourceRef | None
    actions: tuple[Action, ...]
    changes: tuple[ConfigChange, ...] = ()
    live_state: str | None = None
    desired_state: DesiredState | None = None
    waiting: str | None = None  # why no state change is planned yet (e.g. waiting for assignment)
    restart: str | None = None  # auto-restart's note, e.g. "restart 3 of 5; next allowed in 12 min"
    reason: str | None = None  # ownership: why it is deleted (pruned), held or created again, from the ledger
    recreated: int = 0  # deleted outside the reconciler this many times in a row, this time included

    @property
    def in_sync(self) -> bool:
        return not self.actions


@dataclass(frozen=True, slots=True)
class Plan:
    connectors: tuple[ConnectorPlan, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(a for c in self.connectors for a in c.actions)

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    ok: bool
    message: str = ""
    http_status: int | None = None
    retryable: bool = False
    skipped: bool = False  # never sent: its cluster's breaker was open
    unavailable: bool = False  # Connect itself could not be reached, even after retries
    duration_s: float = 0.0  # from the first request to the answer, retries included


@dataclass(frozen=True, slots=True)
class Report:
    """What a reconcile did (or, in a dry run, would do)."""

    plan: Plan
    outcomes: tuple[Outcome, ...] = ()
    dry_run: bool = True
    # Deleted ConfigMaps (refs) whose every connector Connect has confirmed absent: their tombstones can go.
    settled_deletions: frozenset[str] = frozenset()
    # A targeted pass: cluster -> the connectors it observed and planned (the plan covers only those).
    # None: a full pass over every declared and owned connector.
    scope: Mapping[str, frozenset[str]] | None = None

    @property
    def problems(self) -> tuple[Problem, ...]:
        sources = {(c.cluster, c.connector): c.source for c in self.plan.connectors}
        failed = tuple(
            Problem(
                o.message,
                sources.get((o.action.cluster, o.action.connector)),
                connector=o.action.connector,
                cluster=o.action.cluster,
                retryable=o.retryable,
            )
            for o in self.outcomes
            if not o.ok
        )
        return self.plan.problems + failed

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """One action, for the observers (`telemetry.py`): executed (`outcome` set) or, in a dry run,
    planned (`outcome` None)."""

    action: Action
    plan: ConnectorPlan
    source: ConfigMapDoc | None  # the declaring ConfigMap as last seen (None: pruned, or from a file)
    outcome: Outcome | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class PassEvent:
    """The end of a pass. `blocked`: cluster -> why its prunes were refused; `adopted`: (cluster, name)."""

    report: Report
    duration_s: float
    sources: Mapping[str, ConfigMapDoc] = field(default_factory=dict)
    blocked: Mapping[str, str] = field(default_factory=dict)
    adopted: tuple[tuple[str, str], ...] = ()
