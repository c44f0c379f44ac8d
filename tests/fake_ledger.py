"""An in-memory ledger store with the API server's semantics: resourceVersion on every write, 409 when
the version sent is not the current one, and a shared event log so tests can check the order of ledger
writes against the requests sent to Connect."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from reconciler.core.ledger import Ledger, ledger_data, ledger_from_configmap
from reconciler.errors import LedgerConflict, LedgerUnavailable


@dataclass
class MemoryLedgerStore:
    writable: bool = True
    stored: dict[str, tuple[dict[str, str], dict[str, str], int]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    fail_reads: int = 0
    conflicts: int = 0  # the next N writes answer 409

    def where(self, cluster: str) -> str:
        return f"memory ledger {cluster}"

    def read(self, cluster: str) -> Ledger:
        if self.fail_reads:
            self.fail_reads -= 1
            raise LedgerUnavailable(f"cannot read the ledger {self.where(cluster)}: HTTP 503")
        if cluster not in self.stored:
            return Ledger(cluster=cluster)
        data, annotations, version = self.stored[cluster]
        return ledger_from_configmap(cluster, data=data, annotations=annotations, version=str(version))

    def write(self, ledger: Ledger) -> Ledger:
        current = self.stored.get(ledger.cluster)
        expected = None if current is None else str(current[2])
        if self.conflicts or ledger.version != expected:
            self.conflicts = max(0, self.conflicts - 1)
            raise LedgerConflict(f"cannot write the ledger {self.where(ledger.cluster)}: HTTP 409 Conflict")
        version = 1 if current is None else current[2] + 1
        annotations = current[1] if current else {}
        self.stored[ledger.cluster] = (ledger_data(ledger), annotations, version)
        self.log.append(f"ledger {ledger.cluster}: {','.join(ledger.entries) or '-'}")
        return replace(self.read(ledger.cluster))

    def entries(self, cluster: str = "default") -> list[str]:
        return sorted(self.read(cluster).entries)

    def approve(self, cluster: str, stamp: str) -> None:
        data, annotations, version = self.stored[cluster]
        self.stored[cluster] = (data, {**annotations, "connect-reconciler.io/deletion-approved": stamp}, version + 1)
