"""What a long-running watcher carries from one pass to the next: rendered templates, and what Connect
showed last. No I/O; mutable, owned by one watcher and used by one pass at a time.

Both are caches of facts that a full pass re-establishes, never sources of truth:
- a rendered template is reused only while the spec (ConfigMap ref, key, program, enabled) and every
  render input (environment, properties, Secret and ConfigMap volumes, the redactor's secrets, the
  default cluster, the size cap) are exactly those it was rendered with; failures are never kept, so a
  template that timed out is tried again;
- a targeted pass reads each connector's config fresh from Connect (its existence and its config
  decide every write); only the state and task states come from here, and only for a connector whose
  last observed state nothing has touched since: any action on it but a config update (which keeps
  Connect's target state) drops it, so its status is read again next time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from reconciler.core.rendering import Renderer
from reconciler.model import ActionKind, ClusterState, ConnectorSpec, DesiredConnector, LiveConnector, Outcome


class RenderMemo:
    """Rendered connectors by spec. Entries not used by a pass are dropped at the next one, so the memo
    holds exactly the current fleet however the ConfigMaps churn."""

    def __init__(self) -> None:
        self._inputs: tuple[Any, ...] | None = None
        self._kept: dict[ConnectorSpec, DesiredConnector] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def bind(self, renderer: Renderer) -> Callable[[ConnectorSpec], DesiredConnector]:
        """`renderer.render`, answered from the memo where the same spec met the same inputs. Call once
        per pass: entries the previous pass did not use go."""
        redactor = renderer.redactor
        inputs = (
            renderer.arguments,
            renderer.default_cluster,
            renderer.max_config_bytes,
            redactor.secret_values if redactor is not None else None,
        )
        previous = self._kept if inputs == self._inputs else {}
        self._inputs = inputs
        kept: dict[ConnectorSpec, DesiredConnector] = {}
        self._kept = kept

        def render(spec: ConnectorSpec) -> DesiredConnector:
            done = kept.get(spec) or previous.get(spec)
            if done is None:
                done = renderer.render(spec)  # a RenderError propagates and is not kept
            kept[spec] = done
            return done

        return render


class LiveMemo:
    """Each cluster's last observation (a full listing, patched by targeted reads and the pass's own
    actions), for the state and task states of connectors a targeted pass reads by name."""

    def __init__(self) -> None:
        self._clusters: dict[str, ClusterState] = {}

    def covers(self, clusters: Iterable[str]) -> bool:
        """Whether every cluster has been listed whole once (its version and states are known)."""
        return all(c in self._clusters for c in clusters)

    def version(self, cluster: str) -> str | None:
        return self._clusters[cluster].version

    def known(self, cluster: str) -> Mapping[str, LiveConnector]:
        held = self._clusters.get(cluster)
        return held.connectors if held is not None else {}

    def remember(self, live: Mapping[str, ClusterState], outcomes: Sequence[Outcome]) -> None:
        for cluster, state in live.items():
            if state.observed is None:
                connectors = dict(state.connectors)
            elif cluster in self._clusters:
                connectors = dict(self._clusters[cluster].connectors)
                for name in state.observed:
                    if name in state.connectors:
                        connectors[name] = state.connectors[name]
                    else:
                        connectors.pop(name, None)
            else:
                continue  # never listed whole: nothing to patch
            self._clusters[cluster] = ClusterState(cluster, connectors, state.version)
        for o in outcomes:
            held = self._clusters.get(o.action.cluster)
            if held is None or o.action.connector not in held.connectors:
                continue
            connectors = dict(held.connectors)
            if o.ok and o.action.kind is ActionKind.UPDATE:
                continue  # a config write keeps the target state; the config itself is always re-read
            # Deleted, created, paused, resumed, stopped, restarted, or an outcome not known: read again.
            del connectors[o.action.connector]
            self._clusters[o.action.cluster] = replace(held, connectors=connectors)


class PassMemory:
    """The watcher's memory across passes (see the module docstring)."""

    def __init__(self) -> None:
        self.renders = RenderMemo()
        self.live = LiveMemo()
