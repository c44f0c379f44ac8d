"""k8s/ on a real API server: every manifest passes server-side dry-run, and the ServiceAccount can do
exactly what the reconciler needs (list/watch ConfigMaps in its namespace) and nothing else."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from reconciler.clients.kube import ConfigMapApi
from tests.harness.apiserver_kit import ApiServerKit

K8S = Path(__file__).resolve().parents[2] / "k8s"


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
        "base": ["Deployment", "Role", "RoleBinding", "ServiceAccount"],
        "all-namespaces": ["ClusterRole", "ClusterRoleBinding", "Deployment", "ServiceAccount"],
    }[overlay]
    assert kinds == expected
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


def sar(
    apiserver: ApiServerKit, user: str, groups: list[str], *, verb: str, resource: str, namespace: str
) -> bool:
    with apiserver.api_client() as api:
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=groups,
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource=resource, namespace=namespace
                ),
            )
        )
        return bool(client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed)


def test_service_account_has_exactly_the_needed_rights(apiserver: ApiServerKit, namespace: str) -> None:
    apply(
        apiserver,
        [d for d in kustomize(apiserver, "base") if d["kind"] != "Deployment"],
        namespace,
        dry_run=False,
    )
    user = f"system:serviceaccount:{namespace}:connect-reconciler"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    other = apiserver.create_namespace("other")
    allowed = [("list", "configmaps", namespace), ("watch", "configmaps", namespace)]
    denied = [
        (v, "configmaps", namespace)
        for v in ("get", "create", "update", "patch", "delete", "deletecollection")
    ]
    denied += [
        ("list", "configmaps", other),
        ("watch", "configmaps", other),
        ("list", "secrets", namespace),
        ("get", "secrets", namespace),
        ("list", "pods", namespace),
        ("create", "events", namespace),
    ]
    for verb, resource, ns in allowed:
        assert sar(apiserver, user, groups, verb=verb, resource=resource, namespace=ns), (verb, resource, ns)
    for verb, resource, ns in denied:
        assert not sar(apiserver, user, groups, verb=verb, resource=resource, namespace=ns), (
            verb,
            resource,
            ns,
        )

    # And for real, with the ServiceAccount's own token: the watcher's list + watch work, a write does not.
    token = apiserver.service_account_token(namespace, "connect-reconciler")
    with apiserver.api_client(token=token) as api:
        items, rv = ConfigMapApi(api, namespace=namespace, selector="destination=connect").list()
        assert items == [] and rv
        core = client.CoreV1Api(api)
        with pytest.raises(client.ApiException) as denied_write:
            core.create_namespaced_config_map(namespace, {"metadata": {"name": f"x-{uuid.uuid4().hex[:4]}"}})
        assert denied_write.value.status == 403
        with pytest.raises(client.ApiException) as denied_other:
            ConfigMapApi(api, namespace=other, selector="destination=connect").list()
        assert denied_other.value.status == 403


def test_cluster_role_variant_reads_every_namespace(apiserver: ApiServerKit, namespace: str) -> None:
    docs = [d for d in kustomize(apiserver, "all-namespaces") if d["kind"] != "Deployment"]
    for d in docs:
        if d["kind"] == "ClusterRoleBinding":
            d["subjects"][0]["namespace"] = namespace
            d["metadata"]["name"] = f"connect-reconciler-{namespace}"
    apply(apiserver, docs, namespace, dry_run=False)
    user = f"system:serviceaccount:{namespace}:connect-reconciler"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    elsewhere = apiserver.create_namespace("elsewhere")
    assert sar(apiserver, user, groups, verb="watch", resource="configmaps", namespace=elsewhere)
    assert not sar(apiserver, user, groups, verb="list", resource="secrets", namespace=elsewhere)
    assert not sar(apiserver, user, groups, verb="update", resource="configmaps", namespace=elsewhere)


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
