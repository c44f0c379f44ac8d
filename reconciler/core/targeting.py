"""Which connectors a targeted pass observes and plans, given the ConfigMaps that changed.

Pure. A targeted pass (the watcher, after events on a few ConfigMaps) must make every write and delete a
full pass would make for them, so its scope is, per cluster:
- every connector the changed ConfigMaps declare now (a deleted ConfigMap's last state included);
- every ledger entry they own, so a connector a ConfigMap stopped declaring is pruned;
- every ledger entry no present ConfigMap declares: the prune candidates of the whole cluster, so the
  mass-delete guard counts exactly what a full pass would count, and a pending or blocked prune is
  never skipped.
Everything else is left unobserved, and an unobserved connector is neither written, pruned nor
forgotten (`ClusterState.sees`). A scope larger than `limit` is not targeted at all: the caller lists
the clusters whole, which is cheaper than that many reads by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.core.ledger import Ledger
from reconciler.model import DesiredConnector

# Past this many connectors, one expanded listing per cluster costs less than reading each by name.
TARGETED_LIMIT = 32


def targeted_names(
    changed: Iterable[str],
    *,
    desired: Iterable[DesiredConnector],
    ledgers: Mapping[str, Ledger],
    limit: int = TARGETED_LIMIT,
) -> dict[str, frozenset[str]] | None:
    """cluster -> the connector names to observe; None when the scope exceeds `limit`."""
    refs = frozenset(changed)
    scope: dict[str, set[str]] = {}
    declared: set[tuple[str, str]] = set()
    for d in desired:
        declared.add((d.cluster, d.name))
        if d.source.configmap in refs:
            scope.setdefault(d.cluster, set()).add(d.name)
    for cluster, ledger in ledgers.items():
        for name, entry in ledger.entries.items():
            if entry.owner in refs or (cluster, name) not in declared:
                scope.setdefault(cluster, set()).add(name)
    if sum(len(names) for names in scope.values()) > limit:
        return None
    return {cluster: frozenset(names) for cluster, names in scope.items()}
