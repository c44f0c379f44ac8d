"""What a long-running watcher carries from one pass to the next: rendered templates, and what Connect
showed last; and what the hook carries from one run to the next: which connector each spec declares.
No I/O but the declaration index's own file; mutable, used by one pass at a time.

Both are caches of facts that a full pass re-establishes, never sources of truth:
- a rendered template is reused only while the spec (ConfigMap ref, key, program, enabled) and every
  render input (environment, properties, Secret and ConfigMap volumes, the redactor's secrets, the
  default cluster, the size cap) are exactly those it was rendered with; failures are never kept, so a
  template that timed out is tried again;
- a targeted pass reads each connector's config fresh from Connect (its existence and its config
  decide every write); only the state and task states come from here: as last listed, or the target
  state this watcher's own create, pause, resume or stop set (a config write keeps it). A restart,
  a delete or an outcome not known drops the connector, so its status is read again next time. Like
  any listing, this goes stale when someone else acts in Connect: the full resync repairs that.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.core.rendering import Renderer
from reconciler.errors import RenderError
from reconciler.model import (
    ActionKind,
    ClusterState,
    ConnectorSpec,
    DesiredConnector,
    DesiredState,
    LiveConnector,
    Outcome,
)

RenderMany = Callable[[Sequence[ConnectorSpec]], list[DesiredConnector | RenderError]]


class RenderMemo:
    """Rendered connectors by spec. Entries not used by a pass are dropped at the next one, so the memo
    holds exactly the current fleet however the ConfigMaps churn."""

    def __init__(self) -> None:
        self._inputs: tuple[Any, ...] | None = None
        self._kept: dict[ConnectorSpec, DesiredConnector] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def bind(self, renderer: Renderer) -> RenderMany:
        """`renderer.render_many`, answered from the memo where the same spec met the same inputs. Call
        once per pass: entries the previous pass did not use go."""
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

        def render(specs: Sequence[ConnectorSpec]) -> list[DesiredConnector | RenderError]:
            results: list[DesiredConnector | RenderError | None] = [
                kept.get(s) or previous.get(s) for s in specs
            ]
            missing = [i for i, r in enumerate(results) if r is None]
            for i, fresh in zip(missing, renderer.render_many([specs[i] for i in missing]), strict=True):
                results[i] = fresh
            done: list[DesiredConnector | RenderError] = []
            for spec, result in zip(specs, results, strict=True):
                assert result is not None
                if not isinstance(result, RenderError):
                    kept[spec] = result  # a failure is not kept: the next pass tries again
                done.append(result)
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
            if held is None:
                continue
            connectors = dict(held.connectors)
            name, kind = o.action.connector, o.action.kind
            if o.ok and kind is ActionKind.UPDATE:
                continue  # a config write keeps the target state; the config itself is always re-read
            target = _TARGET_STATE.get(kind) if o.ok else None
            if kind is ActionKind.CREATE and o.ok:
                target = (o.action.initial_state or DesiredState.RUNNING).value.upper()
            if target is not None:
                # The target state this pass just set, as Connect will report it; tasks not yet known.
                connectors[name] = LiveConnector(name, o.action.config or {}, target)
            else:
                # Deleted, restarted, or an outcome not known: nothing is assumed; read it next time.
                connectors.pop(name, None)
            self._clusters[o.action.cluster] = replace(held, connectors=connectors)


_TARGET_STATE = {ActionKind.PAUSE: "PAUSED", ActionKind.RESUME: "RUNNING", ActionKind.STOP: "STOPPED"}


def inputs_digest(renderer: Renderer) -> str:
    """One digest of everything a render depends on besides the spec."""
    redactor = renderer.redactor
    secrets = sorted(redactor.secret_values) if redactor is not None else []
    text = json.dumps(
        [renderer.arguments, renderer.default_cluster, renderer.max_config_bytes, secrets], sort_keys=True
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def spec_digest(spec: ConnectorSpec) -> str:
    text = json.dumps([spec.source.configmap, spec.source.key, spec.enabled, spec.program])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class DeclarationIndex:
    """The hook's memory across runs: which (cluster, name) each spec declared, under which inputs.

    A hook run is a new process, so it cannot keep rendered connectors; rendering the whole set anew
    would cost every run a compile per template. A targeted run needs of the unchanged ConfigMaps only
    what they declare — to find duplicates, moves and prune candidates — and that is what this keeps:
    per spec digest, the cluster and name it rendered to, valid while the inputs digest is the same.
    No config and no secret is stored, only SHA-256 digests, in a file (mode 0600) only the hook's own
    user can read — who can read the mounted Secrets anyway. Failures are never kept (a broken template
    is rendered again); an unreadable or foreign file is an empty index."""

    VERSION = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inputs: str | None = None
        self._names: dict[str, tuple[str, str]] = {}
        self._fresh: dict[str, tuple[str, str]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == self.VERSION and isinstance(data.get("specs"), dict):
                self._inputs = str(data.get("inputs"))
                self._names = {
                    k: (v[0], v[1])
                    for k, v in data["specs"].items()
                    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)
                }
        except (OSError, ValueError, AttributeError):
            pass

    def __len__(self) -> int:
        return len(self._names)

    def bind(self, renderer: Renderer, *, changed: frozenset[str] | None) -> RenderMany:
        """`renderer.render` for the changed ConfigMaps' specs and any spec the index does not know; a
        placeholder (`DesiredConnector.placeholder`) for the others. `changed` None: render every spec
        (a full run), and remember them all."""
        inputs = inputs_digest(renderer)
        known = self._names if inputs == self._inputs else {}
        self._inputs = inputs
        self._fresh = {}

        def render(specs: Sequence[ConnectorSpec]) -> list[DesiredConnector | RenderError]:
            digests = [spec_digest(s) for s in specs]
            results: list[DesiredConnector | RenderError | None] = []
            for spec, digest in zip(specs, digests, strict=True):
                unchanged = changed is not None and spec.source.configmap not in changed
                hit = known.get(digest) if unchanged else None
                if hit is None:
                    results.append(None)
                    continue
                self._fresh[digest] = hit
                cluster, name = hit
                results.append(
                    DesiredConnector(
                        name, {}, DesiredState.RUNNING, cluster, spec.enabled, spec.source, placeholder=True
                    )
                )
            missing = [i for i, r in enumerate(results) if r is None]
            for i, fresh in zip(missing, renderer.render_many([specs[i] for i in missing]), strict=True):
                results[i] = fresh
                if not isinstance(fresh, RenderError):
                    self._fresh[digests[i]] = (fresh.cluster, fresh.name)
            return [r for r in results if r is not None]

        return render

    def save(self) -> None:
        """Keep what this run rendered or used; a failure to write only costs the next run its renders."""
        self._names = dict(self._fresh)
        body = json.dumps(
            {
                "version": self.VERSION,
                "inputs": self._inputs,
                "specs": {k: list(v) for k, v in self._names.items()},
            }
        )
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, self.path)
        except OSError:
            pass


class PassMemory:
    """The watcher's memory across passes (see the module docstring)."""

    def __init__(self) -> None:
        self.renders = RenderMemo()
        self.live = LiveMemo()
