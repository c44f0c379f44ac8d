"""Where the ownership ledgers live: one ConfigMap per Connect cluster, or an exported file (read-only).

I/O edge. Writes are `create` or `replace` carrying the resourceVersion that was read, so two writers
cannot overwrite each other: a 409 is `LedgerConflict`, and the pass re-reads and re-plans rather
than merging blindly. The pure model and (de)serialisation are in `core/ledger.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.core.ledger import (
    APPROVAL_ANNOTATION,
    LEDGER_LABELS,
    Ledger,
    LedgerError,
    ledger_data,
    ledger_from_configmap,
    ledger_name,
    ledgers_from_file,
    timestamp,
)
from reconciler.errors import LedgerConflict, LedgerUnavailable

_TIMEOUT = (5.0, 30.0)


class LedgerStore(Protocol):
    writable: bool

    def where(self, cluster: str) -> str: ...

    def read(self, cluster: str) -> Ledger: ...

    def write(self, ledger: Ledger) -> Ledger: ...


def _api_error(action: str, where: str, exc: ApiException) -> LedgerUnavailable:
    cls = LedgerConflict if exc.status == 409 else LedgerUnavailable
    return cls(f"cannot {action} the ledger {where}: HTTP {exc.status} {exc.reason}")


class KubeLedgerStore:
    """The ledgers as ConfigMaps `connect-reconciler-ledger-<cluster>` in one namespace."""

    writable = True

    def __init__(self, api: client.ApiClient, *, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def where(self, cluster: str) -> str:
        return f"ConfigMap {self.namespace}/{ledger_name(cluster)}"

    def read(self, cluster: str) -> Ledger:
        try:
            cm = self.core.read_namespaced_config_map(
                ledger_name(cluster), self.namespace, _request_timeout=_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return Ledger(cluster=cluster)
            raise _api_error("read", self.where(cluster), exc) from None
        except Exception as exc:  # urllib3 transport errors: the ledger is unknown, not empty
            raise LedgerUnavailable(
                f"cannot read the ledger {self.where(cluster)}: {type(exc).__name__}"
            ) from None
        return self._ledger(cluster, cm)

    def _ledger(self, cluster: str, cm: client.V1ConfigMap) -> Ledger:
        meta = cm.metadata or client.V1ObjectMeta()
        try:
            return ledger_from_configmap(
                cluster, data=cm.data, annotations=meta.annotations, version=meta.resource_version
            )
        except LedgerError as exc:
            raise LedgerUnavailable(f"{self.where(cluster)}: {exc}") from None

    def write(self, ledger: Ledger) -> Ledger:
        name = ledger_name(ledger.cluster)
        # replace keeps only what is sent: carry the approval over
        annotations = {APPROVAL_ANNOTATION: ledger.approved_at} if ledger.approved_at else None
        meta = client.V1ObjectMeta(
            name=name,
            namespace=self.namespace,
            labels=dict(LEDGER_LABELS),
            annotations=annotations,
            resource_version=ledger.version,
        )
        body = client.V1ConfigMap(api_version="v1", kind="ConfigMap", metadata=meta, data=ledger_data(ledger))
        try:
            if ledger.version is None:
                cm = self.core.create_namespaced_config_map(self.namespace, body, _request_timeout=_TIMEOUT)
            else:
                cm = self.core.replace_namespaced_config_map(
                    name, self.namespace, body, _request_timeout=_TIMEOUT
                )
        except ApiException as exc:
            raise _api_error("write", self.where(ledger.cluster), exc) from None
        except Exception as exc:
            raise LedgerUnavailable(
                f"cannot write the ledger {self.where(ledger.cluster)}: {type(exc).__name__}"
            ) from None
        return self._ledger(ledger.cluster, cm)

    def approve(self, cluster: str, *, now: datetime) -> str:
        """`approve-deletes`: stamp the ledger with an approval; only blocks raised before it are lifted."""
        stamp = timestamp(now)
        patch = {"metadata": {"annotations": {APPROVAL_ANNOTATION: stamp}}}
        try:
            self.core.patch_namespaced_config_map(
                ledger_name(cluster), self.namespace, patch, _request_timeout=_TIMEOUT
            )
        except ApiException as exc:
            raise _api_error("approve deletes in", self.where(cluster), exc) from None
        return stamp


class FileLedgerStore:
    """`plan --ledger-file`: the ledgers exported by `connect-reconciler ledger export`, read-only."""

    writable = False

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise LedgerUnavailable(f"--ledger-file {path}: cannot read: {exc.strerror}") from None
        try:
            self.ledgers: Mapping[str, Ledger] = ledgers_from_file(text, origin=path)
        except LedgerError as exc:
            raise LedgerUnavailable(str(exc)) from None

    def where(self, cluster: str) -> str:
        return f"{self.path} (cluster {cluster})"

    def read(self, cluster: str) -> Ledger:
        return self.ledgers.get(cluster) or Ledger(cluster=cluster)

    def write(self, ledger: Ledger) -> Ledger:
        raise LedgerUnavailable(f"{self.path} is a read-only ledger export")
