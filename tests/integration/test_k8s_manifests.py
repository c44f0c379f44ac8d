"""k8s/ on a real API server: every manifest passes server-side dry-run, and the ServiceAccount can do
exactly what the reconciler needs (list/watch ConfigMaps in its namespace, create/patch Events there;
get/update its ownership ledgers by name, create them) and nothing else."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from reconciler.clients.events import EventRecorder
from reconciler.clients.kube import ConfigMapApi
from reconciler.clients.ledger_store import KubeLedgerStore
from reconciler.core.ledger import Entry, ledger_name
from reconciler.core.redaction import Redactor
from reconciler.errors import LedgerUnavailable
from reconciler.model import ConfigMapDoc, ConnectorPlan, Plan, Report, SourceRef
from reconciler.telemetry import PassEvent
from tests.harness.apiserver_kit import ApiServerKit

K8S = Path(__file__).resolve().parents[2] / "k8s"
LEDGER = "connect-reconciler-ledger-default"  # the one ledger name the base Role lists
EVENTS = ("events", "events.events.k8s.io")  # core/v1 and events.k8s.io/v1
LEASE = "connect-reconciler"  # the one Lease the leader-election Role lists


def kustomize(apiserver: ApiServerKit, overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(apiserver.kubectl("kustomize", str(K8S / overlay))) if d]


def apply(apiserver: ApiServerKit, docs: list[dict[str, Any]], namespace: str, *, dry_run: bool) -> str:
    text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    args = ["apply", "--server-side", "--field-manager=kustomize-controller", "-n", namespace, "-f", "-"]
    if dry_run:
        args.append("--dry-run=server")
    return apiserver.kubectl(*args, input_text=text)


@pytest.mark.parametrize("overlay", ["base", "all-namespaces"])
def test_every_manifest_passes_server_side_dry_run(
    apiserver: ApiServerKit, namespace: str, overlay: str
) -> None:
    docs = kustomize(apiserver, overlay)
    kinds = sorted(d["kind"] for d in docs)
    expected = {
        "base": [
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "RoleBinding",
            "ServiceAccount",
        ],
        # The watch Role goes (a ClusterRole replaces it); the ledger Role stays: the ledgers live in the
        # reconciler's own namespace in every mode.
        "all-namespaces": [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "ServiceAccount",
        ],
    }[overlay]
    assert kinds == expected
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    # The watch rules (a Role, or the ClusterRole when watching every namespace): ConfigMaps list/watch,
    # Events create/patch in both API groups (events.k8s.io/v1, core/v1 as the fallback).
    watch_role = next(
        d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole") and d["metadata"]["name"] == "connect-reconciler"
    )
    assert watch_role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    assert roles["connect-reconciler-ledger"]["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [LEDGER],
            "verbs": ["get", "update"],
        },
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
    ]
    binding = next(
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "connect-reconciler-ledger"
    )
    assert binding["roleRef"]["name"] == "connect-reconciler-ledger"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "connect-reconciler"}]
    assert_leader_manifests(docs)
    out = apply(apiserver, docs, namespace, dry_run=True)
    assert out.count("(server dry run)") == len(docs), out
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"] and container["livenessProbe"] and container["readinessProbe"]
    assert container["args"] == ["run"]
    env = {e["name"]: e for e in container["env"]}
    if overlay == "all-namespaces":
        assert env["CONNECT_RECONCILER_NAMESPACE"]["value"] == "*"
    # The ledger's namespace, from the downward API, in both modes (also when watching '*').
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def assert_leader_manifests(docs: list[dict[str, Any]]) -> None:
    """Leader election: the one Lease's Role and binding, 2 replicas with POD_NAME as identity, a PDB."""
    role = next(
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "connect-reconciler-leader"
    )
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [LEASE],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]
    binding = next(
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "connect-reconciler-leader"
    )
    assert binding["roleRef"]["name"] == "connect-reconciler-leader"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "connect-reconciler"}]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CONNECT_RECONCILER_LEADER_ELECTION"]["value"] == "on"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def lease_allowed(apiserver: ApiServerKit, namespace: str, verb: str, name: str | None) -> bool:
    user, groups = service_account(namespace)
    with apiserver.api_client() as api:
        attributes = client.V1ResourceAttributes(
            group="coordination.k8s.io", resource="leases", verb=verb, namespace=namespace, name=name
        )
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(user=user, groups=groups, resource_attributes=attributes)
        )
        status = client.AuthorizationV1Api(api).create_subject_access_review(review).status
        return bool(status is not None and status.allowed)


def test_service_account_may_hold_only_its_lease(apiserver: ApiServerKit, namespace: str) -> None:
    apply(
        apiserver,
        [d for d in kustomize(apiserver, "base") if d["kind"] != "Deployment"],
        namespace,
        dry_run=False,
    )
    allowed = [("get", LEASE), ("update", LEASE), ("create", None)]
    denied = [
        ("delete", LEASE),
        ("patch", LEASE),
        ("get", "another-lease"),
        ("update", "another-lease"),
        ("delete", "another-lease"),
        ("list", None),
        ("watch", None),
    ]
    assert [v for v in allowed if not lease_allowed(apiserver, namespace, *v)] == []
    assert [v for v in denied if lease_allowed(apiserver, namespace, *v)] == []
    other = apiserver.create_namespace("other")
    assert not lease_allowed(apiserver, other, "get", LEASE)  # the SA of `other` has no binding there
    # For real, with the ServiceAccount's token: the elector's create, read and replace work; delete does not.
    token = apiserver.service_account_token(namespace, "connect-reconciler")
    with apiserver.api_client(token=token) as api:
        leases = client.CoordinationV1Api(api)
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=LEASE), spec=client.V1LeaseSpec(holder_identity="pod-a")
        )
        created = leases.create_namespaced_lease(namespace, body)
        read = leases.read_namespaced_lease(LEASE, namespace)
        assert read.metadata is not None and created.metadata is not None
        assert read.metadata.resource_version == created.metadata.resource_version
        leases.replace_namespaced_lease(LEASE, namespace, read)
        with pytest.raises(client.ApiException) as denied_delete:
            leases.delete_namespaced_lease(LEASE, namespace)
        assert denied_delete.value.status == 403


def sar(
    apiserver: ApiServerKit,
    user: str,
    groups: list[str],
    *,
    verb: str,
    resource: str,
    namespace: str,
    name: str | None = None,
) -> bool:
    # `events.events.k8s.io` is resource `events` of API group `events.k8s.io` (kubectl's spelling).
    resource, _, group = resource.partition(".")
    with apiserver.api_client() as api:
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=groups,
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource=resource, group=group, namespace=namespace, name=name
                ),
            )
        )
        return bool(client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed)


def service_account(namespace: str) -> tuple[str, list[str]]:
    user = f"system:serviceaccount:{namespace}:connect-reconciler"
    return user, ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]


Access = tuple[str, str, str, str | None]  # verb, resource, namespace, name (None: no name)


def assert_access(
    apiserver: ApiServerKit, namespace: str, *, allowed: list[Access], denied: list[Access]
) -> None:
    user, groups = service_account(namespace)
    for verb, resource, ns, name in allowed:
        assert sar(apiserver, user, groups, verb=verb, resource=resource, namespace=ns, name=name), (
            "denied",
            verb,
            resource,
            ns,
            name,
        )
    for verb, resource, ns, name in denied:
        assert not sar(apiserver, user, groups, verb=verb, resource=resource, namespace=ns, name=name), (
            "allowed",
            verb,
            resource,
            ns,
            name,
        )


def test_service_account_has_exactly_the_needed_rights(apiserver: ApiServerKit, namespace: str) -> None:
    apply(
        apiserver,
        [d for d in kustomize(apiserver, "base") if d["kind"] != "Deployment"],
        namespace,
        dry_run=False,
    )
    other = apiserver.create_namespace("other")
    allowed: list[Access] = [
        # the watcher
        ("list", "configmaps", namespace, None),
        ("watch", "configmaps", namespace, None),
        # the ledger: read, replace (resourceVersion), first create
        ("get", "configmaps", namespace, LEDGER),
        ("update", "configmaps", namespace, LEDGER),
        ("create", "configmaps", namespace, None),
        # Events about the watched ConfigMaps: create, and patch (an Event's series), in both API groups.
        *((v, r, namespace, None) for r in EVENTS for v in ("create", "patch")),
    ]
    denied: list[Access] = [
        (v, "configmaps", namespace, None) for v in ("get", "update", "patch", "delete", "deletecollection")
    ]
    denied += [
        # The ledger is never patched by the ServiceAccount (approve-deletes is another identity's) nor deleted.
        ("patch", "configmaps", namespace, LEDGER),
        ("delete", "configmaps", namespace, LEDGER),
        # Any other ConfigMap by name: the watch Role grants list/watch only, so not even get.
        *((v, "configmaps", namespace, "some-other-config") for v in ("get", "update", "patch", "delete")),
        # resourceNames is an exact list, not a prefix: another cluster's ledger needs adding to it.
        ("get", "configmaps", namespace, "connect-reconciler-ledger-eu"),
        ("update", "configmaps", namespace, "connect-reconciler-ledger-eu"),
        # Nothing of the ledger's in another namespace.
        ("get", "configmaps", other, LEDGER),
        ("update", "configmaps", other, LEDGER),
        ("create", "configmaps", other, None),
        ("list", "configmaps", other, None),
        ("watch", "configmaps", other, None),
        ("list", "secrets", namespace, None),
        ("get", "secrets", namespace, None),
        ("list", "pods", namespace, None),
        # Events are written only: never read back, listed, watched, replaced or deleted; nor elsewhere.
        *((v, r, namespace, None) for r in EVENTS for v in ("get", "list", "watch", "update", "delete")),
        *((v, r, other, None) for r in EVENTS for v in ("create", "patch")),
    ]
    assert_access(apiserver, namespace, allowed=allowed, denied=denied)

    # And for real, with the ServiceAccount's own token: the watcher's list + watch work, and so does the
    # ledger store's whole cycle; writing anything else, or approving, does not.
    token = apiserver.service_account_token(namespace, "connect-reconciler")
    with apiserver.api_client(token=token) as api:
        items, rv = ConfigMapApi(api, namespace=namespace, selector="destination=connect").list()
        assert items == [] and rv
        with pytest.raises(client.ApiException) as denied_other:
            ConfigMapApi(api, namespace=other, selector="destination=connect").list()
        assert denied_other.value.status == 403

        store = KubeLedgerStore(api, namespace=namespace)
        assert ledger_name("default") == LEDGER
        empty = store.read("default")  # 404 on get: not created yet
        assert empty.version is None and empty.entries == {}
        entry = Entry(connector="orders-sink", owner=f"{namespace}/orders", since="2024-01-01T00:00:00Z")
        created = store.write(empty.with_entries({"orders-sink": entry}))  # create
        assert created.version
        replaced = store.write(created.with_entries({}))  # update with resourceVersion
        assert replaced.version and replaced.version != created.version
        assert store.read("default") == replaced  # get
        with pytest.raises(LedgerUnavailable, match="HTTP 403"):
            store.approve("default", now=datetime.now(UTC))  # patch: not the ServiceAccount's
        with pytest.raises(LedgerUnavailable, match="HTTP 403"):
            store.read("eu")  # a cluster missing from resourceNames fails loudly, never reads as empty

        core = client.CoreV1Api(api)
        with pytest.raises(client.ApiException) as denied_delete:
            core.delete_namespaced_config_map(LEDGER, namespace)
        assert denied_delete.value.status == 403
        # create cannot be limited by name: any ConfigMap can be created, but never changed or removed after.
        name = f"x-{uuid.uuid4().hex[:4]}"
        stray = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
        made = core.create_namespaced_config_map(namespace, stray)
        for call in (
            lambda: core.read_namespaced_config_map(name, namespace),
            lambda: core.replace_namespaced_config_map(name, namespace, stray),
            lambda: core.patch_namespaced_config_map(name, namespace, {"data": {"k": "v"}}),
            lambda: core.delete_namespaced_config_map(name, namespace),
        ):
            with pytest.raises(client.ApiException) as denied_write:
                call()
            assert denied_write.value.status == 403

        # Events on a ConfigMap: the recorder's create, then its series PATCH, through events.k8s.io;
        # reading Events back is not the ServiceAccount's.
        doc = ConfigMapDoc(
            name=name, namespace=namespace, labels={}, data={}, uid=made.metadata.uid, resource_version="1"
        )
        ref = f"{namespace}/{name}"
        blocked = PassEvent(
            Report(Plan((ConnectorPlan("c", "default", SourceRef(ref), ()),)), dry_run=False),
            0.0,
            sources={ref: doc},
            blocked={"default": "a test"},
        )
        recorder = EventRecorder(api, instance="rbac-test", redactor=Redactor)
        recorder(blocked)
        recorder(blocked)
        assert recorder.flush(30)
        recorder.close(5)
        assert (recorder.emitted, recorder.failures, recorder.core_only) == (2, 0, False)
        for listing in (client.EventsV1Api(api).list_namespaced_event, core.list_namespaced_event):
            with pytest.raises(client.ApiException) as denied_events:
                listing(namespace)
            assert denied_events.value.status == 403


def documented_ledger_patch() -> str:
    """The kustomize patch that ledger-role.yaml's comment tells users to copy, as they would copy it."""
    lines = (K8S / "base" / "ledger-role.yaml").read_text().splitlines()
    start = lines.index("#   patches:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        block.append(line[4:])
    return "\n".join(block) + "\n"


def test_documented_patch_adds_cluster_ledgers(
    apiserver: ApiServerKit, namespace: str, tmp_path: Path
) -> None:
    overlay = tmp_path / "more-clusters"
    overlay.mkdir()
    base = os.path.relpath(K8S / "base", overlay)  # kustomize refuses an absolute base
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{base}]\n" + documented_ledger_patch()
    )
    docs = [d for d in yaml.safe_load_all(apiserver.kubectl("kustomize", str(overlay))) if d]
    role = next(
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "connect-reconciler-ledger"
    )
    names = [LEDGER, "connect-reconciler-ledger-eu", "connect-reconciler-ledger-us"]
    assert role["rules"][0]["resourceNames"] == names
    apply(apiserver, [d for d in docs if d["kind"] != "Deployment"], namespace, dry_run=False)
    assert_access(
        apiserver,
        namespace,
        allowed=[(v, "configmaps", namespace, n) for n in names for v in ("get", "update")],
        denied=[
            ("get", "configmaps", namespace, "connect-reconciler-ledger-ap"),
            ("delete", "configmaps", namespace, "connect-reconciler-ledger-eu"),
            ("patch", "configmaps", namespace, "connect-reconciler-ledger-us"),
        ],
    )


def test_cluster_role_variant_reads_every_namespace(apiserver: ApiServerKit, namespace: str) -> None:
    docs = [d for d in kustomize(apiserver, "all-namespaces") if d["kind"] != "Deployment"]
    for d in docs:
        if d["kind"] == "ClusterRoleBinding":
            d["subjects"][0]["namespace"] = namespace
            d["metadata"]["name"] = f"connect-reconciler-{namespace}"
    apply(apiserver, docs, namespace, dry_run=False)
    user, groups = service_account(namespace)
    elsewhere = apiserver.create_namespace("elsewhere")
    assert sar(apiserver, user, groups, verb="watch", resource="configmaps", namespace=elsewhere)
    assert not sar(apiserver, user, groups, verb="list", resource="secrets", namespace=elsewhere)
    assert not sar(apiserver, user, groups, verb="update", resource="configmaps", namespace=elsewhere)
    for resource in EVENTS:  # Events go on the ConfigMaps, in their namespaces
        assert sar(apiserver, user, groups, verb="create", resource=resource, namespace=elsewhere)
        assert sar(apiserver, user, groups, verb="patch", resource=resource, namespace=elsewhere)
        assert not sar(apiserver, user, groups, verb="list", resource=resource, namespace=elsewhere)
        assert not sar(apiserver, user, groups, verb="delete", resource=resource, namespace=elsewhere)
    # The ledger stays in the reconciler's own namespace, also when it watches every namespace.
    assert_access(
        apiserver,
        namespace,
        allowed=[
            ("get", "configmaps", namespace, LEDGER),
            ("update", "configmaps", namespace, LEDGER),
            ("create", "configmaps", namespace, None),
        ],
        denied=[
            ("get", "configmaps", elsewhere, LEDGER),
            ("update", "configmaps", elsewhere, LEDGER),
            ("create", "configmaps", elsewhere, None),
            ("update", "configmaps", namespace, "some-other-config"),
            ("delete", "configmaps", namespace, LEDGER),
            ("patch", "configmaps", namespace, LEDGER),
        ],
    )


def test_flux_manifests_are_well_formed() -> None:
    # Flux's CRDs are not installed on the test API server, so these get a structural check only.
    docs = {
        d["kind"]: d for f in sorted((K8S / "flux").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
    }
    assert docs["GitRepository"]["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    ks = docs["Kustomization"]
    assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert ks["spec"]["sourceRef"] == {
        "kind": "GitRepository",
        "name": docs["GitRepository"]["metadata"]["name"],
    }
    assert ks["spec"]["path"] == "./configmaps" and ks["spec"]["prune"] is True
