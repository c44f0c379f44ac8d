"""Targeted passes (the watcher after events on a few ConfigMaps) against full passes.

The differential tests run the same change twice, on two identical worlds: one reconciled by a full
pass, one by a pass targeted at the changed ConfigMaps with the memory a previous pass left. Both must
send the same writes to Connect and leave the same ledger — a targeted pass never skips a delete, a
guard or a hold a full pass would make — while the targeted one reads only what it needs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from reconciler.core.ledger import Entry, Ledger
from reconciler.core.pruning import PruneSettings
from reconciler.core.rendering import IN_PROCESS, Renderer
from reconciler.core.specs import specs_from_configmap
from reconciler.core.targeting import targeted_names
from reconciler.errors import RenderError
from reconciler.model import (
    Action,
    ActionKind,
    ClusterState,
    ConfigMapDoc,
    ConnectorSpec,
    DesiredConnector,
    DesiredState,
    LiveConnector,
    Outcome,
    RenderInputs,
    Report,
    SourceRef,
)
from reconciler.pass_memory import DeclarationIndex, LiveMemo, PassMemory, RenderMemo
from reconciler.pipeline import reconcile
from tests.fake_clock import FakeClock
from tests.fake_connect import FakeConnect
from tests.fake_ledger import MemoryLedgerStore
from tests.support import runtime_for


def doc(cm: str, *connectors: str, v: int = 0, enabled: str | None = None) -> ConfigMapDoc:
    labels = {"destination": "connect", **({"enabled": enabled} if enabled else {})}
    data = {
        f"{c}.json": json.dumps({"name": c, "config": {"connector.class": "X", "v": v}}) for c in connectors
    }
    return ConfigMapDoc(cm, "apps", labels, data, uid=f"uid-{cm}", resource_version=str(v))


def broken(cm: str) -> ConfigMapDoc:
    return ConfigMapDoc(cm, "apps", {"destination": "connect"}, {"x.json": "{not jq"}, uid=f"uid-{cm}")


class World:
    def __init__(self, *, ledger: bool = True, **prune: Any) -> None:
        self.fake = FakeConnect()
        self.store = MemoryLedgerStore() if ledger else None
        self.clock = FakeClock()
        self.prune = PruneSettings(**prune)
        self.memory = PassMemory()

    def run(
        self,
        docs: Sequence[ConfigMapDoc],
        *,
        changed: set[str] | None = None,
        deleted: Sequence[ConfigMapDoc] = (),
    ) -> Report:
        self.fake.requests.clear()
        rt = runtime_for(self.fake, ledger=self.store, prune=self.prune, clock=self.clock)
        return reconcile(
            list(docs), rt=rt, dry_run=False, changed=changed, memory=self.memory, deleted=list(deleted)
        )

    def requests(self) -> list[str]:
        return [f"{r.method} {unquote(r.url.path)}" for r in self.fake.requests]

    def ledger(self) -> tuple[list[str], str | None]:
        if self.store is None:
            return [], None
        held = self.store.read("default")
        return sorted(held.entries), held.blocked_reason


@dataclass(frozen=True)
class Case:
    name: str
    before: tuple[ConfigMapDoc, ...]
    after: tuple[ConfigMapDoc, ...]
    changed: frozenset[str]
    expect: tuple[str, ...]  # the writes both passes send, sorted
    deleted: tuple[ConfigMapDoc, ...] = ()
    ledger: bool = True
    prune: tuple[tuple[str, Any], ...] = ()


A, B = "apps/a", "apps/b"
CASES = [
    Case(
        "a ConfigMap stops declaring one of its two connectors",
        (doc("a", "c1", "c2"), doc("b", "c3")),
        (doc("a", "c1"), doc("b", "c3")),
        frozenset({A}),
        ("DELETE /connectors/c2",),
    ),
    Case(
        "a config edit",
        (doc("a", "c1"), doc("b", "c3")),
        (doc("a", "c1", v=1), doc("b", "c3")),
        frozenset({A}),
        ("PUT /connectors/c1/config",),
    ),
    Case(
        "a rename deletes the old name and creates the new",
        (doc("a", "c1"), doc("b", "c3")),
        (doc("a", "c1b"), doc("b", "c3")),
        frozenset({A}),
        ("DELETE /connectors/c1", "POST /connectors"),
    ),
    Case(
        "a move between ConfigMaps is an owner transfer, no delete",
        (doc("a", "c1", "c2"), doc("b", "c3")),
        (doc("a", "c2"), doc("b", "c1", "c3")),
        frozenset({A, B}),
        (),
    ),
    Case(
        "a removed ConfigMap is pruned",
        (doc("a", "c1"), doc("b", "c3")),
        (doc("b", "c3"),),
        frozenset({A}),
        ("DELETE /connectors/c1",),
    ),
    Case(
        "the mass-delete guard counts what a full pass counts",
        (doc("a", "c1", "c2", "c3", "c4", "c5", "c6"), doc("b", "k")),
        (doc("b", "k"),),
        frozenset({A}),
        (),
    ),
    Case(
        "the ratio guard counts the whole cluster, not the scope",
        (doc("a", "c1", "c2"), doc("b", "k1", "k2")),
        (doc("b", "k1", "k2"),),
        frozenset({A}),
        ("DELETE /connectors/c1", "DELETE /connectors/c2"),
    ),
    Case(
        "a broken ConfigMap elsewhere makes the view partial: no prune",
        (doc("a", "c1", "c2"), doc("b", "c3")),
        (doc("a", "c1"), broken("b")),
        frozenset({A}),
        (),
    ),
    Case(
        "a duplicate declaration writes nothing for that name",
        (doc("a", "c1"), doc("b", "c3")),
        (doc("a", "c1", "c3", v=1), doc("b", "c3")),
        frozenset({A}),
        ("PUT /connectors/c1/config",),
    ),
    Case(
        'enabled: "false" deletes the owned connector',
        (doc("a", "c1"), doc("b", "c3")),
        (doc("a", "c1", enabled="false"), doc("b", "c3")),
        frozenset({A}),
        ("DELETE /connectors/c1",),
    ),
    Case(
        "without a ledger: a deleted ConfigMap's tombstone deletes its connectors",
        (doc("a", "c1", "c2"), doc("b", "c3")),
        (doc("b", "c3"),),
        frozenset({A}),
        ("DELETE /connectors/c1", "DELETE /connectors/c2"),
        deleted=(doc("a", "c1", "c2"),),
        ledger=False,
    ),
    Case(
        "without a ledger: an undeclared connector is left alone, as a full pass leaves it",
        (doc("a", "c1", "c2"), doc("b", "c3")),
        (doc("a", "c1", v=1), doc("b", "c3")),
        frozenset({A}),
        ("PUT /connectors/c1/config",),
        ledger=False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_targeted_pass_writes_exactly_what_a_full_pass_writes(case: Case) -> None:
    worlds = {mode: World(ledger=case.ledger, **dict(case.prune)) for mode in ("full", "targeted")}
    for w in worlds.values():
        first = w.run(case.before)
        assert first.ok and first.scope is None
    full = worlds["full"].run(case.after, deleted=case.deleted)
    targeted = worlds["targeted"].run(case.after, changed=set(case.changed), deleted=case.deleted)
    assert full.scope is None and targeted.scope is not None
    assert sorted(worlds["full"].fake.writes()) == list(case.expect)
    assert sorted(worlds["targeted"].fake.writes()) == list(case.expect)
    assert worlds["targeted"].ledger() == worlds["full"].ledger()
    assert sorted(worlds["targeted"].fake.connectors) == sorted(worlds["full"].fake.connectors)
    assert {str(p) for p in targeted.problems} <= {str(p) for p in full.problems}
    assert "GET /connectors" not in worlds["targeted"].requests()  # no listing: reads by name only


def test_a_config_edit_costs_two_requests_and_the_next_edit_two_again() -> None:
    w = World()
    w.run([doc("a", "c1"), doc("b", "c3")])
    for version in (1, 2):
        report = w.run([doc("a", "c1", v=version), doc("b", "c3")], changed={A})
        assert report.ok and w.requests() == ["GET /connectors/c1/config", "PUT /connectors/c1/config"]
    assert w.fake.connectors["c1"]["config"]["v"] == "2"


def test_an_unchanged_configmap_event_sends_one_read_and_no_write() -> None:
    w = World()
    w.run([doc("a", "c1"), doc("b", "c3")])
    report = w.run([doc("a", "c1"), doc("b", "c3")], changed={A})
    assert report.ok and w.requests() == ["GET /connectors/c1/config"]


def test_after_its_own_state_change_the_watcher_knows_the_target_state() -> None:
    w = World()
    w.run([doc("a", "c1")])  # created: its target state RUNNING is known without a status read
    report = w.run([doc("a", "c1", v=1)], changed={A})
    assert report.ok and w.requests() == ["GET /connectors/c1/config", "PUT /connectors/c1/config"]
    paused = ConfigMapDoc(
        "a",
        "apps",
        {"destination": "connect"},
        {
            "c1.json": json.dumps(
                {"name": "c1", "state": "paused", "config": {"connector.class": "X", "v": 1}}
            )
        },
    )
    w.run([paused], changed={A})
    assert w.requests() == ["GET /connectors/c1/config", "PUT /connectors/c1/pause"]
    w.run([doc("a", "c1", v=1)], changed={A})  # back to running: PAUSED is known, the resume is sent
    assert w.requests() == ["GET /connectors/c1/config", "PUT /connectors/c1/resume"]
    assert w.fake.connectors["c1"]["state"] == "RUNNING"


def test_after_a_restart_or_an_unknown_outcome_the_status_is_read_again() -> None:
    w = World()
    w.run([doc("a", "c1")])
    w.fake.fail(
        "PUT", "/connectors/c1/config", 500, {"error_code": 500, "message": "Request timed out"}, times=9
    )
    w.run([doc("a", "c1", v=1)], changed={A})  # the write's outcome stays unknown
    w.fake.faults.clear()
    w.fake.requests.clear()
    w.run([doc("a", "c1", v=1)], changed={A})
    assert w.requests()[:2] == ["GET /connectors/c1/config", "GET /connectors/c1/status"]


def test_drift_outside_the_scope_waits_for_the_full_resync() -> None:
    w = World()
    w.run([doc("a", "c1"), doc("b", "c3")])
    w.fake.connectors["c3"]["state"] = "PAUSED"  # paused by hand in Connect
    w.run([doc("a", "c1", v=1), doc("b", "c3")], changed={A})
    assert w.fake.writes() == ["PUT /connectors/c1/config"]
    report = w.run([doc("a", "c1", v=1), doc("b", "c3")])  # the resync
    assert report.scope is None and w.fake.writes() == ["PUT /connectors/c3/resume"]


def test_an_unobserved_ledger_entry_is_neither_written_nor_forgotten() -> None:
    w = World()
    w.run([doc("a", "c1"), doc("b", "c3")])
    del w.fake.connectors["c3"]  # deleted by hand: only a pass that reads c3 may notice
    w.run([doc("a", "c1", v=1), doc("b", "c3")], changed={A})
    assert w.ledger()[0] == ["c1", "c3"] and w.fake.writes() == ["PUT /connectors/c1/config"]
    w.run([doc("a", "c1", v=1), doc("b", "c3")])  # the full pass re-creates it
    assert w.fake.writes() == ["POST /connectors"]


def test_a_pending_prune_elsewhere_is_made_by_the_next_targeted_pass() -> None:
    """A grace period held c2's delete; when it has expired, a pass targeted at an unrelated ConfigMap
    makes the delete, as a full pass would: every prune candidate is in every scope."""
    w = World(grace_seconds=60)
    w.run([doc("a", "c1", "c2"), doc("b", "c3")])
    w.run([doc("a", "c1"), doc("b", "c3")], changed={A})
    assert w.fake.writes() == []
    w.clock._advance(120)
    w.run([doc("a", "c1"), doc("b", "c3", v=1)], changed={B})
    assert sorted(w.fake.writes()) == ["DELETE /connectors/c2", "PUT /connectors/c3/config"]


def test_a_large_scope_or_an_unlisted_cluster_makes_a_full_pass() -> None:
    w = World()
    many = [doc(f"m{i}", f"c{i}") for i in range(40)]
    first = w.run(many, changed={d.ref for d in many})  # nothing listed yet: full
    assert first.scope is None
    edited = [doc(f"m{i}", f"c{i}", v=1) for i in range(40)]
    report = w.run(edited, changed={d.ref for d in edited})  # 40 > the limit: one listing is cheaper
    assert report.scope is None and "GET /connectors" in w.requests()
    assert len(w.fake.writes()) == 40


class CountingEngine:
    def __init__(self) -> None:
        self.runs = 0

    def run(self, program: str, args_json: str) -> list[Any]:
        self.runs += 1
        return IN_PROCESS.run(program, args_json)


def test_the_render_memo_renders_each_template_once_per_inputs() -> None:
    engine = CountingEngine()
    memo = RenderMemo()
    specs = [s for cm in (doc("a", "c1", "c2"), doc("b", "c3")) for s in _specs(cm)]

    def render_all(env: dict[str, str]) -> list[DesiredConnector | RenderError]:
        return memo.bind(Renderer(RenderInputs(env=env), engine=engine))(specs)

    first = render_all({"X": "1"})
    assert engine.runs == 3
    assert render_all({"X": "1"}) == first and engine.runs == 3
    render_all({"X": "2"})  # rotated inputs: everything renders again
    assert engine.runs == 6
    memo.bind(Renderer(RenderInputs(env={"X": "2"}), engine=engine))(specs[:1])
    assert len(memo) == 1  # what the last pass did not use is gone


def _specs(cm: ConfigMapDoc) -> list[ConnectorSpec]:
    return specs_from_configmap(cm)


def test_targeted_names_cover_declared_owned_and_every_prune_candidate() -> None:
    def d(name: str, cm: str) -> DesiredConnector:
        return DesiredConnector(
            name, {}, DesiredState.RUNNING, "default", True, SourceRef(cm, f"{name}.json")
        )

    entries = {
        n: Entry(connector=n, owner=owner, origin="created", since="2026-01-01T00:00:00Z")
        for n, owner in (("c1", A), ("c2", A), ("c3", B), ("orphan", "apps/gone"))
    }
    ledgers = {"default": Ledger(cluster="default").with_entries(entries)}
    names = targeted_names({A}, desired=[d("c1", A), d("c3", B), d("new", A)], ledgers=ledgers)
    assert names == {"default": frozenset({"c1", "c2", "new", "orphan"})}
    assert targeted_names({A}, desired=[d("c1", A)], ledgers=ledgers, limit=2) is None


def test_the_live_memo_keeps_listed_states_and_the_target_states_its_own_actions_set() -> None:
    memo = LiveMemo()
    listed = {n: LiveConnector(n, {}, "RUNNING") for n in ("c1", "c2", "c3")}
    memo.remember({"default": ClusterState("default", listed, "4.1.1")}, [])
    outcomes = [
        Outcome(Action(ActionKind.UPDATE, "c1", "default"), ok=True),
        Outcome(Action(ActionKind.PAUSE, "c2", "default"), ok=True),
        Outcome(Action(ActionKind.UPDATE, "c3", "default"), ok=False, message="503"),
        Outcome(Action(ActionKind.CREATE, "c4", "default", initial_state=DesiredState.STOPPED), ok=True),
    ]
    memo.remember({}, outcomes)
    assert {n: c.state for n, c in memo.known("default").items()} == {
        "c1": "RUNNING",
        "c2": "PAUSED",
        "c4": "STOPPED",
    }  # c3's write has no known outcome: forgotten
    memo.remember({}, [Outcome(Action(ActionKind.RESTART, "c2", "default"), ok=True)])
    memo.remember({}, [Outcome(Action(ActionKind.DELETE, "c4", "default"), ok=True)])
    assert sorted(memo.known("default")) == ["c1"]
    read = ClusterState("default", {}, "4.1.1", observed=frozenset({"c1"}))  # Connect: 404
    memo.remember({"default": read}, [])
    assert memo.known("default") == {} and memo.covers(["default"]) and not memo.covers(["other"])


# --- the hook's declaration index -----------------------------------------------------------------


class IndexWorld(World):
    def __init__(
        self, path: Path, *, env: dict[str, str] | None = None, secret: str = "s3cret-value-1"
    ) -> None:
        super().__init__()
        self.index = DeclarationIndex(path)
        self.path = path
        self.env = env or {"STAGE": "prod"}
        self.secret = secret
        self.engine = CountingEngine()

    def run_hook(self, docs: Sequence[ConfigMapDoc], *, changed: set[str] | None = None) -> Report:
        self.fake.requests.clear()
        inputs = RenderInputs(env=self.env, secrets={"db": {"password": self.secret}})
        rt = runtime_for(self.fake, ledger=self.store, prune=self.prune, clock=self.clock, inputs=inputs)
        rt = replace(rt, renderer=Renderer(inputs, engine=self.engine, redactor=rt.redactor))
        self.index = DeclarationIndex(self.path)  # a new process each run: only the file carries over
        return reconcile(list(docs), rt=rt, dry_run=False, changed=changed, index=self.index)


def secret_doc(cm: str, *connectors: str, v: int = 0) -> ConfigMapDoc:
    data = {
        f"{c}.json": f'{{"name": "{c}", "config": {{"connector.class": "X", "v": {v}, "p": $secrets.db.password}}}}'
        for c in connectors
    }
    return ConfigMapDoc(cm, "apps", {"destination": "connect"}, data, uid=f"uid-{cm}")


def test_a_hook_run_for_one_configmap_renders_only_it_once_the_index_knows_the_rest(tmp_path: Path) -> None:
    w = IndexWorld(tmp_path / "index.json")
    fleet = [secret_doc(f"m{i}", f"c{i}") for i in range(10)]
    assert w.run_hook(fleet).ok and w.engine.runs == 10  # a full run renders and remembers all
    fleet[3] = secret_doc("m3", "c3", v=1)
    w.engine.runs = 0
    report = w.run_hook(fleet, changed={"apps/m3"})
    assert report.ok and w.engine.runs == 1 and w.fake.writes() == ["PUT /connectors/c3/config"]
    text = w.path.read_text()
    assert w.secret not in text and "connector.class" not in text and '"X"' not in text  # names, digests
    assert oct(w.path.stat().st_mode & 0o777) == "0o600"
    w.env = {"STAGE": "test"}  # other inputs: nothing the index knows is valid
    w.engine.runs = 0
    w.run_hook(fleet, changed={"apps/m3"})
    assert w.engine.runs == 10


def test_a_placeholder_in_the_scope_is_rendered_never_planned(tmp_path: Path) -> None:
    """b (unchanged, known to the index by name only) declares x, which the ledger says a owns; a stops
    declaring it. x is in the scope, so the run renders everything: x is written from b's real config,
    not from a placeholder, and not pruned."""
    w = IndexWorld(tmp_path / "index.json")
    w.run_hook([secret_doc("a", "x")])
    w.run_hook([secret_doc("a", "x"), secret_doc("b", "x", v=1)], changed={"apps/b"})  # a duplicate
    assert w.fake.writes() == []
    w.engine.runs = 0
    report = w.run_hook([secret_doc("a", "other"), secret_doc("b", "x", v=1)], changed={"apps/a"})
    # a rendered; b's placeholder fell in the scope, so both rendered again, for real.
    assert report.ok and w.engine.runs == 3
    assert sorted(w.fake.writes()) == ["POST /connectors", "PUT /connectors/x/config"]
    assert w.fake.connectors["x"]["config"]["v"] == "1"
    assert w.fake.connectors["x"]["config"]["p"] == w.secret


def test_an_unreadable_or_foreign_index_is_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text("not json")
    assert len(DeclarationIndex(tmp_path / "index.json")) == 0
    (tmp_path / "index.json").write_text(json.dumps({"version": 99, "specs": {"a": ["b", "c"]}}))
    assert len(DeclarationIndex(tmp_path / "index.json")) == 0
    w = IndexWorld(tmp_path / "ro" / "index.json")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)  # cannot be written: the run still works, the next renders all
    try:
        assert w.run_hook([secret_doc("a", "c1")]).ok
    finally:
        (tmp_path / "ro").chmod(0o700)
