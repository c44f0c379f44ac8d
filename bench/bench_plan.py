"""Benchmark: render + normalise + plan for N connectors against a live state that is already in sync.

The watcher re-plans the whole set on every event and resync, so this path's cost bounds how large a
fleet one reconciler handles. Targets (2-core machine), 1,000 connectors: warm (compiled programs cached,
the steady state of a watcher) under 0.1 s; cold (every program compiled by libjq) under 2 s; RSS under 100 MiB.
Measured 2026-11-22: warm 0.033 s, cold 0.98 s, RSS 42 MiB.

    .venv/bin/python bench/bench_plan.py [N]
"""

from __future__ import annotations

import json
import resource
import sys
import time

from reconciler.core.planning import build_plan
from reconciler.core.redaction import Redactor
from reconciler.core.rendering import Renderer
from reconciler.core.selectors import parse_selector
from reconciler.model import ClusterState, ConfigMapDoc, LiveConnector, RenderInputs
from reconciler.pipeline import render_all

TEMPLATE = """{"name": ("bench-" + $ID), "config": {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
 "tasks.max": 2, "topics": ($PREFIX + "-" + $ID), "file": ("/data/" + $ID), "connection.password": env.DB_PASSWORD}}"""


def main(n: int) -> None:
    docs = [
        ConfigMapDoc(
            f"cm-{i}", "default", {"destination": "connect"}, {"c.json": TEMPLATE.replace("$ID", f'"{i}"')}
        )
        for i in range(n)
    ]
    inputs = RenderInputs(
        env={"DB_PASSWORD": "bench-secret"},
        variables={"PREFIX": "t"},
        secret_values=frozenset({"bench-secret"}),
    )
    selector = parse_selector("destination=connect")
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        desired = render_all(docs, renderer=Renderer(inputs), selector=selector)
        live = {
            "default": ClusterState(
                "default",
                {d.name: LiveConnector(d.name, dict(d.config), "RUNNING") for d in desired.connectors},
            )
        }
        plan = build_plan(desired.connectors, live, redactor=Redactor(inputs.secret_values))
        timings.append(time.perf_counter() - start)
        assert not plan.has_changes and len(plan.connectors) == n
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "connectors": n,
                "cold_s": round(timings[0], 3),
                "warm_s": round(min(timings[1:]), 3),
                "max_rss_mib": round(rss_mib, 1),
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
