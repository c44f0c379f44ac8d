"""shell-operator binding contexts (exactly the documented shapes) and the hook's --config output."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.bindings import BINDING, hook_config, parse_binding_contexts
from reconciler.core.selectors import parse_selector
from reconciler.errors import SourceError


def cm(name: str, *, enabled: str = "true", data: str = "{}") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"destination": "connect", "enabled": enabled},
        },
        "data": {f"{name}.json": data},
    }


def item(obj: dict[str, Any]) -> dict[str, Any]:
    return {"object": obj, "filterResult": {"labels": obj["metadata"]["labels"], "data": obj["data"]}}


def test_synchronization_is_the_full_set() -> None:
    result = parse_binding_contexts(
        [{"binding": BINDING, "type": "Synchronization", "objects": [item(cm("a")), item(cm("b"))]}]
    )
    assert result.changed is None
    assert (
        result.configmaps is not None
        and [d.name for d in result.configmaps] == ["a", "b"]
        and result.deleted == ()
    )


def test_empty_synchronization_is_an_empty_full_set() -> None:
    assert (
        parse_binding_contexts([{"binding": BINDING, "type": "Synchronization", "objects": []}]).configmaps
        == ()
    )


def test_events_with_snapshots_every_element_processed_and_deletions_kept() -> None:
    contexts = [
        {
            "binding": BINDING,
            "type": "Event",
            "watchEvent": "Modified",
            "object": cm("a"),
            "snapshots": {BINDING: [item(cm("a")), item(cm("b"))]},
        },
        {
            "binding": BINDING,
            "type": "Event",
            "watchEvent": "Deleted",
            "object": cm("b"),
            "snapshots": {BINDING: [item(cm("a"))]},
        },
        {"binding": "resync", "type": "Schedule", "snapshots": {BINDING: [item(cm("a"))]}},
    ]
    result = parse_binding_contexts(contexts)
    assert [d.name for d in result.configmaps or ()] == ["a"]
    assert [d.name for d in result.deleted] == ["b"]
    assert result.changed is None  # the Schedule (resync) makes the run full
    events_only = parse_binding_contexts(contexts[:2])
    assert events_only.changed == {"default/a", "default/b"}  # a run targeted at what the Events name


def test_deleted_then_recreated_is_not_a_deletion() -> None:
    contexts = [
        {
            "binding": BINDING,
            "type": "Event",
            "watchEvent": "Deleted",
            "object": cm("b"),
            "snapshots": {BINDING: []},
        },
        {
            "binding": BINDING,
            "type": "Event",
            "watchEvent": "Added",
            "object": cm("b"),
            "snapshots": {BINDING: [item(cm("b"))]},
        },
    ]
    result = parse_binding_contexts(contexts)
    assert result.deleted == () and [d.name for d in result.configmaps or ()] == ["b"]


def test_group_context_uses_snapshots() -> None:
    result = parse_binding_contexts(
        [{"binding": "connectors", "type": "Group", "snapshots": {BINDING: [item(cm("g"))]}}]
    )
    assert [d.name for d in result.configmaps or ()] == ["g"]


def test_events_without_snapshots_give_no_full_set() -> None:
    result = parse_binding_contexts(
        [{"binding": BINDING, "type": "Event", "watchEvent": "Deleted", "object": cm("x")}]
    )
    assert result.configmaps is None and [d.name for d in result.deleted] == ["x"]


def test_bad_objects_are_errors_not_crashes() -> None:
    result = parse_binding_contexts(
        [
            {
                "binding": BINDING,
                "type": "Synchronization",
                "objects": [{"object": {"metadata": {}}}, item(cm("ok"))],
            }
        ]
    )
    assert [d.name for d in result.configmaps or ()] == ["ok"] and len(result.errors) == 1


def test_not_an_array() -> None:
    with pytest.raises(SourceError, match="expected a JSON array"):
        parse_binding_contexts({"binding": "x"})


def test_hook_config_shape() -> None:
    config = hook_config(
        selector=parse_selector("destination=connect,tier in (a,b)"),
        namespaces=["default", "data"],
        resync_crontab="* * * * *",
    )
    (kube,) = config["kubernetes"]
    assert config["configVersion"] == "v1"
    assert kube["labelSelector"] == {
        "matchLabels": {"destination": "connect"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
    }
    assert kube["namespace"] == {"nameSelector": {"matchNames": ["default", "data"]}}
    assert kube["includeSnapshotsFrom"] == [BINDING] and "group" not in kube
    assert config["schedule"][0]["includeSnapshotsFrom"] == [BINDING]
    assert kube["queue"] == config["schedule"][0]["queue"] != "main"
    all_namespaces = hook_config(
        selector=parse_selector("destination=connect"), namespaces=[], resync_crontab="* * * * *"
    )
    assert "namespace" not in all_namespaces["kubernetes"][0]
