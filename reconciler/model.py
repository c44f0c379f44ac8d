"""Data that flows between the pipeline's stages: frozen dataclasses and str-valued enums.

Pure: no I/O. Every stage takes these and returns these, so each stage can be tested on plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

DEFAULT_CLUSTER = "default"


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a connector was declared: a ConfigMap (namespace/name) and one of its data keys."""

    configmap: str
    key: str | None = None
    origin: str | None = None  # the file the ConfigMap was read from, when it came from disk

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
class DesiredConnector:
    """A rendered, normalised connector: `config` is exactly what Connect would store (strings, with `name`)."""

    name: str
    config: Mapping[str, str]
    state: DesiredState
    cluster: str
    enabled: bool
    source: SourceRef
    secret_keys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class LiveConnector:
    """A connector as Kafka Connect reports it. `state` is None when Connect has no status for it yet."""

    name: str
    config: Mapping[str, str]
    state: str | None
    tasks: tuple[str, ...] = ()
    type: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterState:
    """What one Connect cluster holds, from one observation."""

    cluster: str
    connectors: Mapping[str, LiveConnector]
    version: str | None = None


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class ConfigChange:
    key: str
    before: str | None
    after: str | None
    secret: bool


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    connector: str
    cluster: str
    config: Mapping[str, str] | None = None
    initial_state: DesiredState | None = None


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


@dataclass(frozen=True, slots=True)
class Report:
    """What a reconcile did (or, in a dry run, would do)."""

    plan: Plan
    outcomes: tuple[Outcome, ...] = ()
    dry_run: bool = True

    @property
    def problems(self) -> tuple[Problem, ...]:
        failed = tuple(
            Problem(o.message, connector=o.action.connector, cluster=o.action.cluster, retryable=o.retryable)
            for o in self.outcomes
            if not o.ok
        )
        return self.plan.problems + failed

    @property
    def ok(self) -> bool:
        return not self.problems
