"""Smoke tests of the real kube-apiserver harness: the API behaviours the reconciler and its RBAC depend on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.harness.kube_kit import KubeKit, wait_until
from tests.integration.kube_fixtures import kube_kit, kube_namespace  # noqa: F401

LABEL = "connect-reconciler.io/enabled"
APPLY = "application/apply-patch+yaml"


@pytest.fixture
def admin(kube_kit: KubeKit) -> Iterator[client.ApiClient]:  # noqa: F811
    with kube_kit.api_client() as api:
        yield api


def configmap(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)


def test_label_selector_lists_only_labelled_configmaps(admin: client.ApiClient, kube_namespace: str) -> None:  # noqa: F811
    core = client.CoreV1Api(admin)
    core.create_namespaced_config_map(kube_namespace, configmap("wanted", {"a": "1"}, {LABEL: "true"}))
    core.create_namespaced_config_map(kube_namespace, configmap("unlabelled", {"b": "2"}))
    core.create_namespaced_config_map(kube_namespace, configmap("disabled", {"c": "3"}, {LABEL: "false"}))

    found = core.list_namespaced_config_map(kube_namespace, label_selector=f"{LABEL}=true")

    assert [item.metadata.name for item in found.items] == ["wanted"]
    assert found.items[0].data == {"a": "1"}
    assert found.metadata.resource_version
    everything = core.list_namespaced_config_map(kube_namespace)
    assert sorted(item.metadata.name for item in everything.items) == ["disabled", "unlabelled", "wanted"]


def test_watch_reports_modified_then_deleted(admin: client.ApiClient, kube_namespace: str) -> None:  # noqa: F811
    core = client.CoreV1Api(admin)
    core.create_namespaced_config_map(kube_namespace, configmap("watched", {"v": "1"}, {LABEL: "true"}))
    listed = core.list_namespaced_config_map(kube_namespace, label_selector=f"{LABEL}=true")

    def change() -> None:  # runs while the watch below is open
        core.patch_namespaced_config_map("watched", kube_namespace, {"data": {"v": "2"}})
        core.delete_namespaced_config_map("watched", kube_namespace)

    changer = threading.Timer(0.5, change)
    events: list[tuple[str, str, dict[str, str] | None]] = []
    watcher = watch.Watch()
    changer.start()
    try:
        for event in watcher.stream(
            core.list_namespaced_config_map,
            kube_namespace,
            label_selector=f"{LABEL}=true",
            resource_version=listed.metadata.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=20,
            _request_timeout=30,
        ):
            if event["type"] == "BOOKMARK":
                continue
            obj = event["object"]
            events.append((event["type"], obj.metadata.name, obj.data))
            if event["type"] == "DELETED":
                break
    finally:
        watcher.stop()
        changer.join(timeout=10)

    assert events == [("MODIFIED", "watched", {"v": "2"}), ("DELETED", "watched", {"v": "2"})]


def managers(cm: client.V1ConfigMap) -> dict[str, str]:
    return {entry.manager: entry.operation for entry in cm.metadata.managed_fields or []}


def test_server_side_apply_as_kustomize_controller(admin: client.ApiClient, kube_namespace: str) -> None:  # noqa: F811
    core = client.CoreV1Api(admin)
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "labels": {LABEL: "true"}},
        "data": {"connector.json": '{"name": "sink"}'},
    }

    created = core.patch_namespaced_config_map(
        "applied", kube_namespace, manifest, field_manager="kustomize-controller", _content_type=APPLY
    )
    assert created.data == {"connector.json": '{"name": "sink"}'}
    assert managers(created) == {"kustomize-controller": "Apply"}

    manifest["data"]["connector.json"] = '{"name": "sink", "v": 2}'
    updated = core.patch_namespaced_config_map(
        "applied", kube_namespace, manifest, field_manager="kustomize-controller", _content_type=APPLY
    )
    assert updated.data == {"connector.json": '{"name": "sink", "v": 2}'}
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)

    rival = {**manifest, "data": {"connector.json": "{}"}}
    with pytest.raises(ApiException) as conflict:
        core.patch_namespaced_config_map(
            "applied", kube_namespace, rival, field_manager="someone-else", _content_type=APPLY
        )
    assert conflict.value.status == 409
    assert "kustomize-controller" in str(conflict.value.body)

    forced = core.patch_namespaced_config_map(
        "applied", kube_namespace, rival, field_manager="someone-else", force=True, _content_type=APPLY
    )
    assert forced.data == {"connector.json": "{}"}
    assert managers(forced)["someone-else"] == "Apply"


def access_review(api: client.ApiClient, namespace: str, sa: str, verb: str, resource: str) -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace}:{sa}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=verb, resource=resource
            ),
        )
    )
    return bool(client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed)


def test_service_account_needs_rbac(kube_kit: KubeKit, admin: client.ApiClient, kube_namespace: str) -> None:  # noqa: F811
    ns, sa = kube_namespace, "reconciler"
    with kube_kit.service_account_client(ns, sa) as sa_api:
        sa_core = client.CoreV1Api(sa_api)
        with pytest.raises(ApiException) as denied:
            sa_core.list_namespaced_config_map(ns)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{ns}:{sa}" in str(denied.value.body)
        assert not access_review(admin, ns, sa, "list", "configmaps")

        rbac = client.RbacAuthorizationV1Api(admin)
        rbac.create_namespaced_role(
            ns,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="configmap-reader"),
                rules=[
                    client.V1PolicyRule(
                        api_groups=[""], resources=["configmaps"], verbs=["get", "list", "watch"]
                    )
                ],
            ),
        )
        rbac.create_namespaced_role_binding(
            ns,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="reconciler-reads-configmaps"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"
                ),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace=ns)],
            ),
        )

        wait_until(
            lambda: access_review(admin, ns, sa, "list", "configmaps"), timeout_s=10, what="RBAC grant"
        )
        assert sa_core.list_namespaced_config_map(ns).items == []
        assert not access_review(admin, ns, sa, "update", "configmaps")
        assert not access_review(admin, ns, sa, "list", "secrets")
        for forbidden in (
            lambda: sa_core.list_namespaced_secret(ns),
            lambda: sa_core.list_namespaced_config_map("default"),
        ):
            with pytest.raises(ApiException) as still_denied:
                forbidden()
            assert still_denied.value.status == 403


def test_etcd_compaction_expires_watches_without_watch_cache(kube_kit: KubeKit, tmp_path: Path) -> None:  # noqa: F811
    """The recipe for 410 Gone: a kit with watch_cache=False, compact_etcd(), then watch from an older version."""
    with KubeKit(
        work_dir=tmp_path / "no-watch-cache",
        apiserver_bin=kube_kit.apiserver_bin,
        etcd_bin=kube_kit.etcd_bin,
        watch_cache=False,
    ) as kit:
        ns = kit.create_namespace("compaction")
        with kit.api_client() as api:
            core = client.CoreV1Api(api)
            old = core.create_namespaced_config_map(ns, configmap("c", {"v": "0"})).metadata.resource_version
            for i in range(1, 4):
                core.patch_namespaced_config_map("c", ns, {"data": {"v": str(i)}})
            assert kit.compact_etcd() > int(old)
            with pytest.raises(ApiException) as gone:
                for _ in watch.Watch().stream(
                    core.list_namespaced_config_map,
                    ns,
                    resource_version=old,
                    timeout_seconds=5,
                    _request_timeout=15,
                ):
                    pass
            assert gone.value.status == 410
            current = core.list_namespaced_config_map(ns)  # a fresh list works and is the recovery path
            assert [item.data for item in current.items] == [{"v": "3"}]
