"""Targeted passes through the fault proxy, against the real worker: a by-name read answered by something
other than Connect (a starting worker's HTML 404) never counts as "absent", so nothing is created,
pruned or forgotten from it; and a config write whose answer was lost is re-read, never sent twice."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from reconciler.entrypoints.flags import settings_from_values
from reconciler.model import ConfigMapDoc, Report
from reconciler.pass_memory import PassMemory
from reconciler.pipeline import reconcile
from reconciler.runtime import open_runtime
from tests.fake_ledger import MemoryLedgerStore
from tests.harness.connect_kit import ConnectKit
from tests.harness.fault_proxy import Fault, FaultProxy, FaultRule
from tests.support import Connect


class World:
    def __init__(self, kit: ConnectKit, proxy: FaultProxy) -> None:
        self.kit, self.proxy = kit, proxy
        self.tag = uuid.uuid4().hex[:6]
        self.store = MemoryLedgerStore()
        self.memory = PassMemory()
        self.settings = settings_from_values({"connect_url": proxy.url, "retry_seconds": 2})

    def name(self, key: str) -> str:
        return f"tf-{self.tag}-{key}"

    def doc(self, cm: str, *keys: str, topic: str = "t") -> ConfigMapDoc:
        data = {
            f"{k}.json": json.dumps(
                {
                    "name": self.name(k),
                    "config": {
                        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                        "tasks.max": "1",
                        "file": str(self.kit.data_dir / f"{self.name(k)}.txt"),
                        "topic": f"{self.name(k)}-{topic}",
                    },
                }
            )
            for k in keys
        }
        return ConfigMapDoc(cm, "apps", {"destination": "connect"}, data, uid=f"uid-{cm}")

    def run(self, *docs: ConfigMapDoc, changed: set[str] | None = None) -> Report:
        with open_runtime(self.settings, environ={}, ledger=self.store) as rt:
            return reconcile(list(docs), rt=rt, dry_run=False, changed=changed, memory=self.memory)

    def owned(self) -> list[str]:
        return sorted(self.store.read("default").entries)


@pytest.fixture
def world(connect_kit: ConnectKit, connect: Connect) -> Iterator[World]:
    with FaultProxy(connect_kit.connect_url) as proxy:
        w = World(connect_kit, proxy)
        yield w
        for key in ("keep", "drop", "other"):
            connect.http.delete(f"/connectors/{w.name(key)}")


def test_a_foreign_404_to_a_read_by_name_prunes_and_forgets_nothing(world: World, connect: Connect) -> None:
    keep, drop, other = world.name("keep"), world.name("drop"), world.name("other")
    assert world.run(world.doc("a", "keep", "drop"), world.doc("b", "other")).ok
    assert world.owned() == sorted([keep, drop, other])
    world.proxy.set_rules([FaultRule(Fault.FOREIGN_404, method="GET", path=f"/connectors/{drop}/config")])
    world.proxy.clear_records()
    report = world.run(world.doc("a", "keep"), world.doc("b", "other"), changed={"apps/a"})
    assert report.scope is not None and not report.ok  # the cluster could not be observed: a problem
    assert world.proxy.forwarded_writes() == []
    assert connect.config(drop) is not None and drop in world.owned()
    world.proxy.clear()
    report = world.run(world.doc("a", "keep"), world.doc("b", "other"), changed={"apps/a"})
    assert report.ok and report.scope is not None
    assert [f"{r.method} {r.path}" for r in world.proxy.forwarded_writes()] == [f"DELETE /connectors/{drop}"]
    assert connect.config(drop) is None and world.owned() == sorted([keep, other])


def test_a_lost_answer_to_a_targeted_write_is_reread_not_rewritten(world: World, connect: Connect) -> None:
    keep = world.name("keep")
    assert world.run(world.doc("a", "keep"), world.doc("b", "other")).ok
    world.proxy.set_rules([FaultRule(Fault.RESET, method="PUT", path=f"/connectors/{keep}/config", times=1)])
    world.proxy.clear_records()
    report = world.run(world.doc("a", "keep", topic="v2"), world.doc("b", "other"), changed={"apps/a"})
    assert report.ok and report.scope is not None, [str(p) for p in report.problems]
    puts = [r for r in world.proxy.forwarded_writes() if r.method == "PUT"]
    assert len(puts) == 1  # the reset write landed; the re-read saw it and sent nothing again
    assert (connect.config(keep) or {}).get("topic") == f"{keep}-v2"


def test_a_worker_restarting_under_a_targeted_pass_gets_the_write_once_it_is_back(
    world: World, connect: Connect, connect_kit: ConnectKit
) -> None:
    """The worker restarts (its port closed, then its HTML 404s while it starts) right when a targeted
    pass reads the edited connector: the read is retried until Connect itself answers, then one PUT."""
    keep = world.name("keep")
    assert world.run(world.doc("a", "keep"), world.doc("b", "other")).ok
    restarted: list[str] = []

    def restart_on_the_read(method: str, path: str) -> None:
        if not restarted and method == "GET" and path == f"/connectors/{keep}/config":
            restarted.append(path)
            connect_kit.restart_worker(wait=False)

    world.settings = settings_from_values({"connect_url": world.proxy.url, "retry_seconds": 90})
    world.proxy.before_forward = restart_on_the_read
    world.proxy.clear_records()
    report = world.run(world.doc("a", "keep", topic="v3"), world.doc("b", "other"), changed={"apps/a"})
    world.proxy.before_forward = None
    assert restarted and report.ok and report.scope is not None, [str(p) for p in report.problems]
    puts = [r for r in world.proxy.forwarded_writes() if r.method == "PUT"]
    assert len(puts) == 1 and world.proxy.forwarded_writes() == puts
    assert (connect.config(keep) or {}).get("topic") == f"{keep}-v3"
