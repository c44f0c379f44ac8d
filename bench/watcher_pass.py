"""Benchmark: the CPU one watcher pass costs, in-process, against a real Kafka Connect holding N connectors.

The watcher's own pass loop without the API server: N ConfigMaps (bench/run.py's connect-operator-style
templates) as ConfigMapDocs, one `PassMemory` and one jq sandbox kept across passes (as `Watcher` keeps
them), a fresh Runtime per pass (as `Watcher.reconcile_pass` opens one). It measures, for each kind of
pass, the reconciler's CPU (this process's `time.process_time` plus the jq sandbox child's user+sys
from /proc), the wall time, and the requests Connect saw (through `FaultProxy`):

- cold full pass: the first pass (every template rendered and compiled in the child; nothing remembered);
- warm full pass (the resync): nothing changed, memory warm — the issue's "≤ 0.5 s of reconciler CPU";
- targeted pass: one ConfigMap edited (its topic), the pass targeted at it — the edit path;
- with `--profile DIR`: pyinstrument text profiles of one warm full pass and one targeted pass.

    .venv/bin/python -m bench.watcher_pass --count 1000 [--passes 5] [--edits 20] [--profile /tmp/prof]
    [--connect-url URL]   (an existing worker; otherwise a Kafka + Connect kit is started in a temp dir)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.run import TEMPLATE, rss_kib
from reconciler.entrypoints.flags import settings_from_values
from reconciler.logs import configure_logging
from reconciler.model import ConfigMapDoc, Report
from reconciler.pass_memory import PassMemory
from reconciler.pipeline import reconcile
from reconciler.runtime import jq_sandbox, open_runtime
from tests.harness.connect_kit import ConnectKit
from tests.harness.fault_proxy import FaultProxy

PREFIX = "wpass"


def docs(n: int, *, edited: dict[int, int] | None = None) -> list[ConfigMapDoc]:
    edited = edited or {}
    return [
        ConfigMapDoc(
            f"{PREFIX}-cm-{i}",
            "bench",
            {"destination": "connect"},
            {"connector.json": TEMPLATE % {"name": f"{PREFIX}-{i}", "index": i, "version": edited.get(i, 0)}},
            uid=f"uid-{i}",
            resource_version=str(edited.get(i, 0)),
        )
        for i in range(n)
    ]


def rss_mib(pid: int | None) -> float | None:
    return round(rss_kib(pid) / 1024, 1) if pid is not None and Path(f"/proc/{pid}").exists() else None


def child_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def connect_url(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    kit = ConnectKit(Path(tempfile.mkdtemp(prefix="connect-reconciler-wpass-")))
    kit.start()
    try:
        yield kit.connect_url
    finally:
        kit.stop()


class Bench:
    def __init__(self, proxy: FaultProxy, props: Path, data_dir: Path) -> None:
        self.proxy = proxy
        self.settings = settings_from_values(
            {"connect_url": self.proxy.url, "properties_dir": [str(props)], "log_format": "json"}
        )
        self.environ = {"BENCH_DATA_DIR": str(data_dir), "STAGE": "bench"}
        self.engine = jq_sandbox(self.settings.render)
        self.memory = PassMemory()

    def one(self, documents: list[ConfigMapDoc], *, changed: set[str] | None = None) -> dict[str, Any]:
        self.proxy.records.clear()
        child = getattr(self.engine, "pid", None)
        cpu0, child0, wall0 = time.process_time(), child_cpu(child), time.perf_counter()
        with open_runtime(self.settings, environ=self.environ, engine=self.engine) as rt:
            report: Report = reconcile(documents, rt=rt, dry_run=False, changed=changed, memory=self.memory)
        wall = time.perf_counter() - wall0
        child = getattr(self.engine, "pid", None)
        cpu = time.process_time() - cpu0 + child_cpu(child) - child0
        methods: dict[str, int] = {}
        for r in self.proxy.records:
            methods[r.method] = methods.get(r.method, 0) + 1
        assert report.ok, [str(p) for p in report.problems][:3]
        return {
            "cpu_s": cpu,
            "wall_s": wall,
            "requests": sum(methods.values()),
            "writes": sum(v for k, v in methods.items() if k != "GET"),
            "methods": methods,
            "targeted": report.scope is not None,
        }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "cpu_s_max": max(r["cpu_s"] for r in runs),
        "requests": sorted({r["requests"] for r in runs}),
        "writes": sorted({r["writes"] for r in runs}),
        "targeted": sorted({r["targeted"] for r in runs}),
    }


def profiled(path: Path, fn: Any) -> None:
    from pyinstrument import Profiler  # noqa: PLC0415 - an optional bench dependency

    profiler = Profiler(interval=0.0005)
    profiler.start()
    fn()
    profiler.stop()
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=5, help="warm full passes")
    parser.add_argument("--edits", type=int, default=20, help="targeted passes, one edit each")
    parser.add_argument("--connect-url", default=None)
    parser.add_argument("--profile", default=None, help="a directory for pyinstrument text profiles")
    parser.add_argument("--out", default=None, help="write the JSON result here too")
    options = parser.parse_args(argv)
    configure_logging(level="warning", fmt="json", stream=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="connect-reconciler-wpass-fixtures-"))
    props = work / "props"
    props.mkdir()
    (props / "bench.properties").write_text("topic.prefix=bench\n")
    n = options.count
    result: dict[str, Any] = {"n": n}
    with connect_url(options.connect_url) as url, FaultProxy(url) as proxy:
        bench = Bench(proxy, props, work)
        try:
            fleet = docs(n)
            result["cold_full"] = bench.one(fleet)  # creates whatever is missing
            result["settle_full"] = bench.one(fleet)  # learns the states the creates left unknown
            result["warm_full"] = summary([bench.one(fleet) for _ in range(options.passes)])
            edits: list[dict[str, Any]] = []
            versions: dict[int, int] = {}
            before = (rss_mib(os.getpid()), rss_mib(getattr(bench.engine, "pid", None)))
            for k in range(options.edits):
                i = (k * 37) % n
                versions[i] = k + 1
                fleet = docs(n, edited=versions)
                edits.append(bench.one(fleet, changed={f"bench/{PREFIX}-cm-{i}"}))
            result["targeted"] = summary(edits)
            after = (rss_mib(os.getpid()), rss_mib(getattr(bench.engine, "pid", None)))
            result["rss_mib"] = {
                "before_own": before[0],
                "before_child": before[1],
                "after_own": after[0],
                "after_child": after[1],
            }
            if options.profile:
                out = Path(options.profile)
                out.mkdir(parents=True, exist_ok=True)
                profiled(out / f"warm-full-{n}.txt", lambda: bench.one(fleet))
                versions[1 % n] = 999
                profiled(
                    out / f"targeted-{n}.txt",
                    lambda: bench.one(docs(n, edited=versions), changed={f"bench/{PREFIX}-cm-{1 % n}"}),
                )
        finally:
            bench.engine.close()
    text = json.dumps(result, indent=2)
    print(text)
    if options.out:
        Path(options.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
