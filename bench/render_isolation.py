"""Benchmark: what running templates in the jq sandbox costs against running them in-process.

Both render the way the pipeline does, `Renderer.render_many` (templates batched, BATCH_SIZE per jq
program, the inputs passed as jq's input document); `in_process_alone_cold_per_s` is the old way, one jq
program per template, for comparison. `bench/jq_compile.py` measures compile time and memory.

Renders N distinct connector templates (a few config keys, $VARS from *.properties, env, a mounted secret
and file, string interpolation: the shapes of configmaps/) through `render_connector`, once with
`IN_PROCESS` and once with a `JqSandbox`. "cold" is the first pass (every program compiled by libjq; for
the sandbox, in a child that has just started), "warm" the best of the later passes (compiled programs
cached, the steady state of a watcher). The sandbox's start (interpreter + libjq until the child is
ready) is measured on its own and is not part of the cold pass.

    .venv/bin/python -m bench.render_isolation --count 1000 [--passes 3]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from reconciler.core import rendering
from reconciler.core.redaction import Redactor
from reconciler.jq_sandbox import JqSandbox
from reconciler.model import ConnectorSpec, RenderInputs, SourceRef

TEMPLATES = (
    """{
  "name": "sink-\\(ID)",
  "state": "running",
  "config": {
    "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
    "tasks.max": 2,
    "topics": ($TOPIC_PREFIX + "-lines-\\(ID)"),
    "file": (env.DEMO_DATA_DIR + "/output-\\(ID).txt")
  }
}""",
    """{
  "name": "source-\\(ID)",
  "config": {
    "name": "source-\\(ID)",
    "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
    "tasks.max": 1,
    "file": "\\(env.DEMO_DATA_DIR)/input-\\(ID).txt",
    "topic": "\\($TOPIC_PREFIX)-\\(env.STAGE)-\\(ID)"
  }
}""",
    """{
  "name": "jdbc-\\(ID)",
  "cluster": "default",
  "config": {
    "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
    "tasks.max": (if env.STAGE == "prod" then 4 else 1 end),
    "topics.regex": "\\($TOPIC_PREFIX)\\\\.orders\\\\..*",
    "connection.url": "jdbc:postgresql://\\($files.db.host):5432/app",
    "connection.user": "app",
    "connection.password": $secrets.db.password,
    "value.converter": "io.confluent.connect.avro.AvroConverter",
    "value.converter.schema.registry.url": $SCHEMA_REGISTRY_URL,
    "errors.tolerance": "all"
  }
}""",
)

INPUTS = RenderInputs(
    env={"DEMO_DATA_DIR": "/data", "STAGE": "dev", "DB_PASSWORD": "bench-Secret-1"}
    | {f"UNRELATED_{i}": f"value-{i}" for i in range(40)},
    variables={"TOPIC_PREFIX": "demo", "SCHEMA_REGISTRY_URL": "http://schema-registry:8081"},
    secrets={"db": {"password": "bench-Secret-2"}},
    files={"db": {"host": "postgres.default.svc"}},
    secret_values=frozenset({"bench-Secret-1", "bench-Secret-2"}),
)


SIMPLE = (
    '{"name": "simple-\\(ID)", "config": {"connector.class": '
    '"org.apache.kafka.connect.file.FileStreamSourceConnector", "tasks.max": "1", "topic": "t-\\(ID)"}}'
)


def simple_specs(count: int) -> list[ConnectorSpec]:
    """The issue's "simple templates": a constant config but for its name and topic."""
    return [
        ConnectorSpec(SourceRef(f"default/cm-{i}", "c.json"), SIMPLE.replace("\\(ID)", str(i)), True)
        for i in range(count)
    ]


def specs(count: int) -> list[ConnectorSpec]:
    """Distinct programs, as in a real fleet: the compiled-program cache holds one entry per connector."""
    return [
        ConnectorSpec(
            SourceRef(f"default/cm-{i}", "c.json"),
            TEMPLATES[i % len(TEMPLATES)].replace("\\(ID)", str(i)),
            True,
        )
        for i in range(count)
    ]


def one_pass(batch: list[ConnectorSpec], engine: rendering.JqEngine, *, alone: bool = False) -> float:
    """Seconds for one pass the way the pipeline renders (`Renderer.render_many`: templates batched,
    arguments and redactor shared), or, `alone`, one template per jq program."""
    renderer = rendering.Renderer(INPUTS, engine=engine, redactor=Redactor(INPUTS.secret_values))
    started = time.perf_counter()
    if alone:
        for spec in batch:
            renderer.render(spec)
    else:
        results = renderer.render_many(batch)
        assert not any(isinstance(r, Exception) for r in results)
    return time.perf_counter() - started


def measure(
    batch: list[ConnectorSpec], engine: rendering.JqEngine, *, passes: int, alone: bool = False
) -> tuple[float, float]:
    cold = one_pass(batch, engine, alone=alone)
    warm = min(one_pass(batch, engine, alone=alone) for _ in range(max(passes - 1, 1)))
    return cold, warm


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="connectors per pass (default 1000)")
    parser.add_argument("--passes", type=int, default=3, help="passes per engine, the first is cold")
    options = parser.parse_args()
    batch = specs(options.count)

    rendering._compile.cache_clear()  # a cold in-process pass compiles every program
    in_cold, in_warm = measure(batch, rendering.IN_PROCESS, passes=options.passes)
    rendering._compile.cache_clear()
    alone_cold, _ = measure(batch, rendering.IN_PROCESS, passes=2, alone=True)
    simple = simple_specs(options.count)
    _, simple_in_warm = measure(simple, rendering.IN_PROCESS, passes=max(options.passes, 3))
    with JqSandbox() as sandbox:
        start_s = timed(sandbox.start)
        sb_cold, sb_warm = measure(batch, sandbox, passes=options.passes)
        assert sandbox.starts == 1 and sandbox.args_sent == 1, "the child restarted or took args twice"
        _, simple_sb_warm = measure(simple, sandbox, passes=max(options.passes, 3))
    n = options.count
    print(
        json.dumps(
            {
                "connectors": n,
                "in_process_cold_per_s": round(n / in_cold),
                "in_process_warm_per_s": round(n / in_warm),
                "sandbox_start_s": round(start_s, 3),
                "sandbox_cold_per_s": round(n / sb_cold),
                "sandbox_warm_per_s": round(n / sb_warm),
                "sandbox_warm_overhead_us": round((sb_warm - in_warm) / n * 1e6),
                "in_process_alone_cold_per_s": round(n / alone_cold),
                "simple_in_process_warm_per_s": round(n / simple_in_warm),
                "simple_sandbox_warm_per_s": round(n / simple_sb_warm),
            }
        )
    )


if __name__ == "__main__":
    main()
