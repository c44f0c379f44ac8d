"""connect-reconciler: a GitOps reconciler for Kafka Connect driven by labeled ConfigMaps.

The public names load on first use (PEP 562), so a process that needs only one module — the jq
sandbox's child, started again after every template it kills — does not import the whole pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
_HOME = {"build_plan": "reconciler.core.planning", "render_connector": "reconciler.core.rendering"}
_HOME["reconcile"] = "reconciler.pipeline"


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'reconciler' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME.get(name, "reconciler.model")), name)


def __dir__() -> list[str]:
    return sorted(__all__)
