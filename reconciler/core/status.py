"""The `status` table: one row per declared or managed connector, desired against live.

Pure: built from the rendered connectors (when ConfigMap files are given), the observed clusters and the
ownership ledgers (when one is reachable). Against the cluster alone — no files — the ledger says which
connectors are managed and what was last done to them; their desired state is then unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.core.ledger import Ledger
from reconciler.core.planning import unconverged
from reconciler.core.recreation import recreated_count
from reconciler.model import ClusterState, DesiredConnector, RestartRecord


@dataclass(frozen=True, slots=True)
class StatusRow:
    connector: str
    cluster: str
    desired: str  # running | paused | stopped | absent | unknown (no files)
    live: str | None  # None: not in Connect
    tasks: tuple[str, ...]
    drift: bool | None  # the live config differs from the desired one; None when either is unknown
    managed: bool | None  # in the ledger; None without a ledger
    last_action: str | None = None
    last_at: str | None = None
    last_error: str | None = None
    restarts: int = 0
    recreated: int = 0  # found deleted outside the reconciler, in a row (core/recreation.py)
    ok: bool = True


def _restarts(ledger: Ledger | None, name: str) -> int:
    entry = ledger.entries.get(name) if ledger is not None else None
    try:
        return RestartRecord.from_json(entry.restart).count if entry is not None and entry.restart else 0
    except ValueError:
        return 0


def status_rows(
    desired: Sequence[DesiredConnector],
    live: Mapping[str, ClusterState],
    ledgers: Mapping[str, Ledger] | None,
) -> list[StatusRow]:
    """`ledgers` None: no ledger. Owned connectors no file declares are shown as pending a prune."""
    pending = set(unconverged(desired, live))
    rows: list[StatusRow] = []
    declared = {(d.cluster, d.name) for d in desired}
    for d in desired:
        rows.append(_row(d.name, d.cluster, d, live, ledgers, failing=d.name in pending))
    for cluster, ledger in sorted((ledgers or {}).items()):
        for name in ledger.entries:
            if (cluster, name) not in declared:
                rows.append(_row(name, cluster, None, live, ledgers, failing=bool(desired)))
    return sorted(rows, key=lambda r: (r.cluster, r.connector))


def _row(
    name: str,
    cluster: str,
    d: DesiredConnector | None,
    live: Mapping[str, ClusterState],
    ledgers: Mapping[str, Ledger] | None,
    *,
    failing: bool,
) -> StatusRow:
    state = live.get(cluster)
    found = state.connectors.get(name) if state is not None else None
    ledger = (ledgers or {}).get(cluster)
    entry = ledger.entries.get(name) if ledger is not None else None
    last = entry.last if entry is not None else {}
    if d is None:
        # Managed but declared by no file: with files given it awaits a prune, without files it is unknown.
        wanted = "absent" if failing else "unknown"
        ok = not failing and found is not None and found.state != "FAILED" and "FAILED" not in found.tasks
    else:
        wanted = d.state.value if d.enabled else "absent"
        ok = not failing
    ok = ok and last.get("ok", True) is not False
    return StatusRow(
        connector=name,
        cluster=cluster,
        desired=wanted,
        live=(found.state or "UNKNOWN") if found is not None else None,
        tasks=found.tasks if found is not None else (),
        drift=(dict(found.config) != dict(d.config))
        if (found is not None and d is not None and d.enabled)
        else None,
        managed=(entry is not None) if ledgers is not None else None,
        last_action=last.get("action"),
        last_at=last.get("at"),
        last_error=last.get("error"),
        restarts=_restarts(ledger, name),
        recreated=recreated_count(entry) if entry is not None else 0,
        ok=ok,
    )
