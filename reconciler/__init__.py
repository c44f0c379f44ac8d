"""connect-reconciler: a GitOps reconciler for Kafka Connect driven by labeled ConfigMaps."""

from reconciler.core.planning import build_plan
from reconciler.core.rendering import render_connector
from reconciler.model import (
    Action,
    ActionKind,
    ClusterState,
    ConfigMapDoc,
    ConnectorPlan,
    DesiredConnector,
    DesiredState,
    LiveConnector,
    Outcome,
    Plan,
    Problem,
    RenderInputs,
    Report,
)
from reconciler.pipeline import reconcile

__all__ = [
    "Action",
    "ActionKind",
    "ClusterState",
    "ConfigMapDoc",
    "ConnectorPlan",
    "DesiredConnector",
    "DesiredState",
    "LiveConnector",
    "Outcome",
    "Plan",
    "Problem",
    "RenderInputs",
    "Report",
    "build_plan",
    "reconcile",
    "render_connector",
]
