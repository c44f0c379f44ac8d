"""Benchmark: the reconciler end to end against a real Kafka Connect worker and a real kube-apiserver.

For each fleet size N it builds N ConfigMaps in the connect-operator style (one labeled ConfigMap per
connector, its data key a jq template for a STOPPED FileStreamSource connector reading `$TOPIC_PREFIX` from a
properties dir and `env.BENCH_DATA_DIR`), starts Kafka + Connect (`tests/harness/connect_kit.py`) and
kube-apiserver + etcd (`tests/harness/apiserver_kit.py`), puts `tests/harness/fault_proxy.FaultProxy` (no
rules) in front of Connect to count and time requests, and measures:

1. cold apply: `connect-reconciler apply DIR` creating N connectors (a subprocess: wall, CPU from
   `os.wait4`, requests, writes, and Connect's share: the summed upstream time of the proxied requests);
2. in-sync resync: the same `apply` again, nothing to change (median of `--repeats` runs);
3. edit -> PUT latency with the real watcher (`connect-reconciler run` subprocess): ConfigMaps created in the
   API server first, the watcher started, all N connectors awaited, then `--edits` edits, each one
   ConfigMap's topic patched through the kubernetes client, timed from the API call's return to the PUT
   arriving at the proxy; p50/p90/p99/max and requests per event;
4. the watcher's RSS (VmRSS, itself and with its jq sandbox child) after the initial sync and after the edits;
5. render throughput (`bench/render_isolation.py`, run as a subprocess) and jq compile time per template;
6. the watcher's pass loop in-process (`bench/watcher_pass.py`);
7. the shell-operator hook for one ConfigMap's `Modified` Event (snapshots of all N): in sync, and with that
   ConfigMap edited (one PUT);
8. at the largest size, the cold-create curve: a cold `apply` of N from empty at each `--max-in-flight` of
   `--concurrency`, and the default it suggests (the smallest within 10% of the best wall, no more 409s).

`--phases` picks among render, cli, watcher, watcher-pass, hook, curve (default: all); without `watcher`
kube-apiserver is not started, so only Kafka + Connect are needed.

Results go to `--out` (Markdown) and the same path with `.json`; they are rewritten after every size, so an
interrupted run keeps the sizes it finished. Fixtures, kit data and logs live in a temp dir outside the repo.

    .venv/bin/python -m bench.run [--sizes 100,500,1000] [--edits 100] [--out docs/benchmarks.md]
    .venv/bin/python -m bench.run --sizes 1000 --phases curve --concurrency 1,2,4,8 --out /tmp/curve.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jq
from kubernetes import client

from bench import render_isolation
from reconciler.core import rendering
from tests.harness.apiserver_kit import ApiServerKit
from tests.harness.connect_kit import KAFKA_VERSION, ConnectKit
from tests.harness.fault_proxy import FaultProxy, Record
from tests.harness.processes import KitError
from tests.support import configmap_yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "connect-reconciler"
DATA_KEY = "connector.json"
QUIET_SECONDS = 0.5  # no request at the proxy for this long: the pass is over
PHASES = ("render", "cli", "watcher", "watcher-pass", "hook", "curve")
TEMPLATE = """{
  "name": "%(name)s",
  "state": "stopped",
  "config": {
    "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
    "tasks.max": 1,
    "file": (env.BENCH_DATA_DIR + "/input-%(index)d.txt"),
    "topic": ($TOPIC_PREFIX + "-%(index)d-v%(version)d")
  }
}"""


# --- fixtures -----------------------------------------------------------------------------------------
def template(prefix: str, index: int, version: int = 0) -> str:
    return TEMPLATE % {"name": f"{prefix}-{index}", "index": index, "version": version}


def write_fixtures(root: Path, prefix: str, n: int) -> tuple[Path, Path]:
    """N ConfigMap files and the properties dir; returns (configmaps dir, properties dir)."""
    cms, props = root / f"{prefix}-configmaps", root / f"{prefix}-props"
    cms.mkdir(parents=True)
    props.mkdir(parents=True)
    (props / "bench.properties").write_text("topic.prefix=bench\nschema.registry.url=http://sr:8081\n")
    for i in range(n):
        (cms / f"cm-{i}.yaml").write_text(configmap_yaml(f"{prefix}-cm-{i}", {DATA_KEY: template(prefix, i)}))
    return cms, props


def child_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "BENCH_DATA_DIR": str(data_dir), "STAGE": "bench", "NO_COLOR": "1"}


# --- the proxy's timings ------------------------------------------------------------------------------
class ProxyClock:
    """`before_forward`/`after_forward` hooks: summed upstream seconds and when each config PUT arrived."""

    def __init__(self, proxy: FaultProxy) -> None:
        self._local = threading.local()
        self._cond = threading.Condition()
        self.upstream_seconds = 0.0
        self.puts: dict[str, list[float]] = {}
        proxy.before_forward, proxy.after_forward = self.before, self.after

    def before(self, method: str, path: str) -> None:
        now = time.monotonic()
        self._local.started = now
        parts = path.split("/")
        if method == "PUT" and len(parts) == 4 and parts[1] == "connectors" and parts[3] == "config":
            with self._cond:
                self.puts.setdefault(parts[2], []).append(now)
                self._cond.notify_all()

    def after(self, method: str, path: str, status: int) -> None:
        elapsed = time.monotonic() - self._local.started
        with self._cond:
            self.upstream_seconds += elapsed

    def reset(self) -> None:
        with self._cond:
            self.upstream_seconds = 0.0

    def put_count(self, name: str) -> int:
        with self._cond:
            return len(self.puts.get(name, []))

    def wait_put(self, name: str, count: int, timeout: float) -> float:
        """When the `count`-th PUT (1-based) of `name`'s config arrived; KitError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.puts.get(name, [])) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KitError(f"no PUT of {name}'s config within {timeout:.0f} s")
                self._cond.wait(left)
            return self.puts[name][count - 1]


def summarize(records: list[Record]) -> dict[str, Any]:
    by_method = Counter(r.method for r in records)
    return {
        "requests": len(records),
        "writes": sum(1 for r in records if r.method != "GET"),
        "by_method": dict(sorted(by_method.items())),
        "conflicts_409": sum(1 for r in records if r.upstream_status == 409),
    }


def wait_quiet(proxy: FaultProxy, quiet: float = QUIET_SECONDS, timeout: float = 600) -> None:
    """Until no request has reached the proxy for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = len(proxy.records), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        count = len(proxy.records)
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise KitError(f"the proxy never went quiet for {quiet} s")


# --- Connect, directly (not through the proxy) ----------------------------------------------------------
def connector_names(http: httpx.Client, prefix: str) -> set[str]:
    return {n for n in http.get("/connectors").json() if n.startswith(prefix + "-")}


def wait_connectors(http: httpx.Client, prefix: str, n: int, timeout: float) -> float:
    """Poll until N connectors named `prefix-*` exist; the monotonic time they were first all seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(connector_names(http, prefix)) >= n:
            return time.monotonic()
        time.sleep(0.25)
    raise KitError(
        f"only {len(connector_names(http, prefix))} of {n} {prefix}-* connectors after {timeout} s"
    )


def delete_connectors(http: httpx.Client, prefix: str) -> None:
    """Leave the worker empty for the next phase (straight to the worker, so nothing is counted)."""
    names = sorted(connector_names(http, prefix))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda name: http.delete(f"/connectors/{name}"), names))
    deadline = time.monotonic() + 300
    while connector_names(http, prefix) and time.monotonic() < deadline:
        time.sleep(0.5)


# --- processes ------------------------------------------------------------------------------------------
def run_child(cmd: list[str], *, env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run to completion; wall seconds, CPU seconds (user+sys, its reaped children included), max RSS."""
    with log.open("ab") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit_code": process.returncode,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "user_s": round(usage.ru_utime, 3),
        "sys_s": round(usage.ru_stime, 3),
        "max_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
    return found


def rss(pid: int) -> dict[str, float]:
    own = rss_kib(pid)
    total = own + sum(rss_kib(c) for c in descendants(pid) if Path(f"/proc/{c}").exists())
    return {"watcher_mib": round(own / 1024, 1), "with_children_mib": round(total / 1024, 1)}


@contextlib.contextmanager
def watcher(cmd: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


# --- the measurements -----------------------------------------------------------------------------------
def percentiles(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    if len(ms) < 2:
        return {"p50_ms": ms[0], "p90_ms": ms[0], "p99_ms": ms[0], "max_ms": ms[0], "mean_ms": ms[0]}
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49], 1),
        "p90_ms": round(q[89], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(ms[-1], 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


def measure_cli(
    n: int,
    *,
    work: Path,
    proxy: FaultProxy,
    clock: ProxyClock,
    http: httpx.Client,
    data_dir: Path,
    repeats: int,
) -> dict[str, Any]:
    prefix = f"c{n}"
    cms, props = write_fixtures(work, prefix, n)
    cmd = [str(CLI), "apply", str(cms), "--properties-dir", str(props), "--connect-url", proxy.url]
    env, log = child_env(data_dir), work / f"{prefix}-cli.log"

    proxy.clear_records()
    clock.reset()
    cold = run_child(cmd, env=env, log=log)
    cold |= summarize(proxy.snapshot())
    cold["connect_upstream_s"] = round(clock.upstream_seconds, 3)
    cold["connect_share"] = round(clock.upstream_seconds / cold["wall_s"], 3)
    cold["connectors_after"] = len(connector_names(http, prefix))

    runs = []
    for _ in range(repeats):
        proxy.clear_records()
        clock.reset()
        run = run_child(cmd, env=env, log=log)
        run |= summarize(proxy.snapshot())
        run["connect_upstream_s"] = round(clock.upstream_seconds, 3)
        runs.append(run)
    median = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    insync = dict(median) | {
        "runs": len(runs),
        "wall_s_all": [r["wall_s"] for r in runs],
        "cpu_s_all": [r["cpu_s"] for r in runs],
        "exit_codes": sorted({r["exit_code"] for r in runs}),
    }
    delete_connectors(http, prefix)
    return {"cold_apply": cold, "in_sync_apply": insync}


def measure_concurrency(
    n: int,
    values: list[int],
    *,
    work: Path,
    proxy: FaultProxy,
    clock: ProxyClock,
    http: httpx.Client,
    data_dir: Path,
) -> list[dict[str, Any]]:
    """The cold-create curve: a cold `apply` of N with `--max-in-flight` at each value, from empty."""
    prefix = f"k{n}"
    cms, props = write_fixtures(work, prefix, n)
    env, log = child_env(data_dir), work / f"{prefix}-curve.log"
    curve = []
    for value in values:
        delete_connectors(http, prefix)
        cmd = [str(CLI), "apply", str(cms), "--properties-dir", str(props), "--connect-url", proxy.url]
        cmd += ["--max-in-flight", str(value)]
        proxy.clear_records()
        clock.reset()
        run = run_child(cmd, env=env, log=log) | summarize(proxy.snapshot())
        run["max_in_flight"] = value
        run["connect_upstream_s"] = round(clock.upstream_seconds, 3)
        run["connectors_after"] = len(connector_names(http, prefix))
        curve.append(run)
    delete_connectors(http, prefix)
    return curve


def curve_choice(curve: list[dict[str, Any]], *, within: float = 0.10) -> dict[str, Any] | None:
    """The smallest --max-in-flight whose wall is within `within` of the best clean run's and that saw no
    more 409s than one at a time (a run that failed or left connectors missing does not count)."""
    if not curve:
        return None
    n = max(r["connectors_after"] for r in curve)
    clean = [r for r in curve if r["exit_code"] == 0 and r["connectors_after"] == n]
    if not clean:
        return None
    first = min(clean, key=lambda r: r["max_in_flight"])
    fair = [r for r in clean if r["conflicts_409"] <= first["conflicts_409"]]
    best = min(r["wall_s"] for r in fair)
    chosen = min((r for r in fair if r["wall_s"] <= best * (1 + within)), key=lambda r: r["max_in_flight"])
    return {
        "max_in_flight": chosen["max_in_flight"],
        "wall_s": chosen["wall_s"],
        "best_wall_s": best,
        "within": within,
        "speedup_vs_first": round(first["wall_s"] / chosen["wall_s"], 2),
    }


def measure_watcher(
    n: int,
    edits: int,
    *,
    work: Path,
    proxy: FaultProxy,
    clock: ProxyClock,
    http: httpx.Client,
    api: ApiServerKit,
    data_dir: Path,
) -> dict[str, Any]:
    prefix = f"w{n}"
    _, props = write_fixtures(work, prefix, 0)
    namespace = api.create_namespace(f"bench-{n}")
    with api.api_client() as kube:
        core = client.CoreV1Api(kube)
        created = time.perf_counter()
        for i in range(n):
            core.create_namespaced_config_map(
                namespace,
                client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=f"{prefix}-cm-{i}", labels={"destination": "connect"}),
                    data={DATA_KEY: template(prefix, i)},
                ),
            )
        create_s = time.perf_counter() - created
        cmd = [
            str(CLI),
            "run",
            "--namespace",
            namespace,
            "--connect-url",
            proxy.url,
            "--kubeconfig",
            str(api.kubeconfig_path),
            "--properties-dir",
            str(props),
            "--health-address",
            "127.0.0.1:0",
            "--resync-seconds",
            "3600",
        ]
        proxy.clear_records()
        clock.reset()
        started = time.monotonic()
        with watcher(cmd, env=child_env(data_dir), log=work / f"{prefix}-watcher.log") as process:
            all_seen = wait_connectors(http, prefix, n, timeout=max(300, n * 1.0))
            wait_quiet(proxy)
            initial = summarize(proxy.snapshot()) | {
                "all_connectors_s": round(all_seen - started, 3),
                "quiet_s": round(time.monotonic() - started - QUIET_SECONDS, 3),
                "connect_upstream_s": round(clock.upstream_seconds, 3),
            }
            rss_initial = rss(process.pid)

            latencies: list[float] = []
            proxy.clear_records()
            clock.reset()
            for k in range(edits):
                i = (k * 7919) % n  # spread over the fleet, every ConfigMap at most once per N edits
                name = f"{prefix}-{i}"
                expected = clock.put_count(name) + 1
                core.patch_namespaced_config_map(
                    f"{prefix}-cm-{i}", namespace, {"data": {DATA_KEY: template(prefix, i, version=k + 1)}}
                )
                returned = time.monotonic()
                put = clock.wait_put(name, expected, timeout=120)
                latencies.append(put - returned)
                wait_quiet(proxy)
                if process.poll() is not None:
                    raise KitError(f"the watcher exited with {process.returncode}")
            during = summarize(proxy.snapshot()) | {"connect_upstream_s": round(clock.upstream_seconds, 3)}
            rss_after = rss(process.pid)
        exit_code = process.returncode
    delete_connectors(http, prefix)
    return {
        "namespace": namespace,
        "configmaps_create_s": round(create_s, 3),
        "initial_sync": initial,
        "edits": {
            "count": edits,
            **(percentiles(latencies) if latencies else {}),
            "requests_per_event": round(during["requests"] / edits, 2) if edits else None,
            "writes_per_event": round(during["writes"] / edits, 2) if edits else None,
            **{f"total_{k}": v for k, v in during.items()},
        },
        "rss_after_initial_sync": rss_initial,
        "rss_after_edits": rss_after,
        "watcher_exit_code": exit_code,
    }


def _hook_object(prefix: str, i: int, version: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{prefix}-cm-{i}",
            "namespace": "bench",
            "labels": {"destination": "connect"},
            "resourceVersion": str(version),
        },
        "data": {DATA_KEY: template(prefix, i, version=version)},
    }


def measure_hook(
    n: int,
    edits: int,
    *,
    work: Path,
    proxy: FaultProxy,
    http: httpx.Client,
    data_dir: Path,
    in_sync_repeats: int = 3,
) -> dict[str, Any]:
    """The shell-operator hook as shell-operator runs it: `hooks/connect-reconciler` in a subprocess with
    a binding-context file holding the snapshot of N ConfigMaps. First a Synchronization (creates N),
    then `in_sync_repeats` in-sync `Modified` Events (the median is shown), then `edits` Events that each
    change one ConfigMap (one PUT)."""
    prefix = f"h{n}"
    _, props = write_fixtures(work, prefix, 0)
    versions = dict.fromkeys(range(n), 0)
    env = child_env(data_dir) | {
        "CONNECT_RECONCILER_CONNECT_URL": proxy.url,
        "CONNECT_RECONCILER_PROPERTIES_DIR": str(props),
        "CONNECT_RECONCILER_HOOK_INDEX": str(work / f"{prefix}-index.json"),
    }
    context = work / f"{prefix}-context.json"

    def snapshot() -> list[dict[str, Any]]:
        return [{"object": _hook_object(prefix, i, v)} for i, v in versions.items()]

    def run_hook(contexts: list[dict[str, Any]]) -> dict[str, Any]:
        context.write_text(json.dumps(contexts))
        proxy.clear_records()
        result = run_child(
            [sys.executable, str(ROOT / "hooks" / "connect-reconciler")],
            env=env | {"BINDING_CONTEXT_PATH": str(context)},
            log=work / f"{prefix}-hook.log",
        )
        return result | summarize(proxy.snapshot())

    def event(i: int) -> list[dict[str, Any]]:
        obj = _hook_object(prefix, i, versions[i])
        return [
            {
                "binding": "connector-configmaps",
                "type": "Event",
                "watchEvent": "Modified",
                "object": obj,
                "snapshots": {"connector-configmaps": snapshot()},
            }
        ]

    sync = run_hook([{"binding": "connector-configmaps", "type": "Synchronization", "objects": snapshot()}])
    in_sync_runs = [run_hook(event((k * 7919) % n)) for k in range(in_sync_repeats)]
    in_sync = sorted(in_sync_runs, key=lambda r: r["wall_s"])[len(in_sync_runs) // 2]
    runs = []
    for k in range(edits):
        i = (k * 7919) % n
        versions[i] += 1
        runs.append(run_hook(event(i)))
    delete_connectors(http, prefix)
    walls = [r["wall_s"] for r in runs]
    return {
        "synchronization": sync,
        "in_sync_event": in_sync
        | {
            "runs": len(in_sync_runs),
            "wall_s_all": [r["wall_s"] for r in in_sync_runs],
            "requests_all": sorted({r["requests"] for r in in_sync_runs}),
            "writes_all": sorted({r["writes"] for r in in_sync_runs}),
            "exit_codes": sorted({r["exit_code"] for r in in_sync_runs}),
        },
        "edit_events": {
            "count": len(runs),
            "wall_s_median": statistics.median(walls) if walls else None,
            "wall_s_max": max(walls) if walls else None,
            "cpu_s_median": statistics.median(r["cpu_s"] for r in runs) if runs else None,
            "cpu_s_max": max(r["cpu_s"] for r in runs) if runs else None,
            "max_rss_mib_max": max(r["max_rss_mib"] for r in runs) if runs else None,
            "requests": sorted({r["requests"] for r in runs}),
            "writes": sorted({r["writes"] for r in runs}),
            "exit_codes": sorted({r["exit_code"] for r in runs}),
        },
    }


def measure_watcher_pass(n: int, *, work: Path, proxy: FaultProxy, http: httpx.Client) -> dict[str, Any]:
    """`bench/watcher_pass.py` (the watcher's pass loop in-process: CPU per pass, RSS over 1,000
    targeted passes) through the proxy."""
    out = work / f"watcher-pass-{n}.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.watcher_pass",
            "--count",
            str(n),
            "--edits",
            "1000",
            "--connect-url",
            proxy.url,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=1200,
    )
    delete_connectors(http, "wpass")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def measure_render(n: int, *, log: Path) -> dict[str, Any]:
    """`bench/render_isolation.py` as a subprocess (its JSON), then jq compile time per template here."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.render_isolation", "--count", str(n)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    log.write_text(result.stderr)
    if result.returncode != 0:
        raise KitError(f"bench.render_isolation exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    isolation = json.loads(result.stdout.strip().splitlines()[-1])
    # As the engine compiles: the inputs are not compiled in (they are the input document of each run).
    variables = rendering.variable_names(render_isolation.INPUTS)
    users = [spec.program for spec in render_isolation.specs(n)]
    times = []
    for program in (rendering.wrap_program(p, variables=variables) for p in users):
        started = time.perf_counter()
        jq.compile(program)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    for at in range(0, n, rendering.BATCH_SIZE):
        jq.compile(rendering.batch_program(users[at : at + rendering.BATCH_SIZE], variables=variables))
    batched = time.perf_counter() - started
    return {
        "render_isolation": isolation,
        "jq_compile_us_mean": round(statistics.fmean(times) * 1e6),
        "jq_compile_us_median": round(statistics.median(times) * 1e6),
        "jq_compile_total_s": round(sum(times), 3),
        "jq_compile_batched_us_per_template": round(batched / n * 1e6),
        "jq_compile_batched_total_s": round(batched, 3),
    }


# --- the report -----------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?"
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "kafka_version": KAFKA_VERSION,
    }


def git_head() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "unknown"


def methods(counts: dict[str, int]) -> str:
    return "(" + ", ".join(f"{method} {count}" for method, count in counts.items()) + ")" if counts else ""


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    cli = result.get("cli")
    if cli:
        cold, insync = cli["cold_apply"], cli["in_sync_apply"]
        out += [
            ("cold apply (create N): wall", f"{cold['wall_s']:.2f} s"),
            ("cold apply: CPU of the CLI (user+sys, incl. jq sandbox)", f"{cold['cpu_s']:.2f} s"),
            (
                "cold apply: requests / writes",
                f"{cold['requests']} / {cold['writes']} {methods(cold['by_method'])}",
            ),
            (
                "cold apply: Connect's share (summed upstream time)",
                f"{cold['connect_upstream_s']:.2f} s ({cold['connect_share']:.0%} of wall)",
            ),
            ("cold apply: CLI max RSS", f"{cold['max_rss_mib']} MiB"),
            (
                f"in-sync apply: wall (median of {insync['runs']})",
                f"{insync['wall_s']:.2f} s (all: {', '.join(f'{w:.2f}' for w in insync['wall_s_all'])})",
            ),
            ("in-sync apply: CPU of the CLI", f"{insync['cpu_s']:.2f} s"),
            (
                "in-sync apply: requests / writes",
                f"{insync['requests']} / {insync['writes']} {methods(insync['by_method'])}",
            ),
            ("in-sync apply: Connect's share", f"{insync['connect_upstream_s']:.2f} s"),
            ("in-sync apply: CLI max RSS", f"{insync['max_rss_mib']} MiB"),
            ("exit codes: cold apply / in-sync applies", f"{cold['exit_code']} / {insync['exit_codes']}"),
        ]
    w = result.get("watcher")
    if w:
        init, e = w["initial_sync"], w["edits"]
        out += [
            ("watcher initial sync: start -> all N connectors exist", f"{init['all_connectors_s']:.2f} s"),
            ("watcher initial sync: start -> proxy quiet", f"{init['quiet_s']:.2f} s"),
            (
                "watcher initial sync: requests / writes",
                f"{init['requests']} / {init['writes']} {methods(init['by_method'])}",
            ),
            ("watcher initial sync: Connect's share", f"{init['connect_upstream_s']:.2f} s"),
            (
                "watcher RSS after initial sync (own / with jq sandbox)",
                "{watcher_mib} / {with_children_mib} MiB".format(**w["rss_after_initial_sync"]),
            ),
        ]
        if e["count"]:
            out += [
                (
                    f"edit -> PUT latency over {e['count']} edits: p50 / p90 / p99 / max",
                    f"{e['p50_ms']:.0f} / {e['p90_ms']:.0f} / {e['p99_ms']:.0f} / {e['max_ms']:.0f} ms",
                ),
                (
                    "Connect's share over all edits (summed upstream time)",
                    f"{e['total_connect_upstream_s']:.2f} s",
                ),
                (
                    "requests / writes per edit event",
                    f"{e['requests_per_event']} / {e['writes_per_event']} {methods(e['total_by_method'])}",
                ),
            ]
        out.append(("watcher exit code after SIGTERM", str(w["watcher_exit_code"])))
        out.append(
            (
                "watcher RSS after the edits (own / with jq sandbox)",
                "{watcher_mib} / {with_children_mib} MiB".format(**w["rss_after_edits"]),
            )
        )
    r = result.get("render")
    if r:
        iso = r["render_isolation"]
        out += [
            (
                "render, in-process: cold / warm",
                f"{iso['in_process_cold_per_s']:,} / {iso['in_process_warm_per_s']:,} templates/s",
            ),
            (
                "render, jq sandbox: cold / warm",
                f"{iso['sandbox_cold_per_s']:,} / {iso['sandbox_warm_per_s']:,} templates/s",
            ),
            (
                "jq sandbox start / warm overhead",
                f"{iso['sandbox_start_s']} s / {iso['sandbox_warm_overhead_us']} µs per template",
            ),
            (
                "jq compile per template: mean / median",
                f"{r['jq_compile_us_mean']} / {r['jq_compile_us_median']} µs",
            ),
        ]
        if "jq_compile_batched_us_per_template" in r:
            out.append(
                (
                    f"jq compile per template, {rendering.BATCH_SIZE} per program (how the pipeline renders)",
                    f"{r['jq_compile_batched_us_per_template']} µs",
                )
            )
        if "simple_in_process_warm_per_s" in iso:
            out.append(
                (
                    "render, simple templates, warm: in-process / jq sandbox",
                    f"{iso['simple_in_process_warm_per_s']:,} / {iso['simple_sandbox_warm_per_s']:,} templates/s",
                )
            )
        if "in_process_alone_cold_per_s" in iso:
            out.append(
                (
                    "render, in-process, one program per template: cold",
                    f"{iso['in_process_alone_cold_per_s']:,} templates/s",
                )
            )
    wp = result.get("watcher_pass")
    if wp:
        warm, targeted = wp["warm_full"], wp["targeted"]
        out += [
            (
                "watcher pass in-process, warm full resync: CPU / wall (median)",
                f"{warm['cpu_s_median']:.3f} / {warm['wall_s_median']:.3f} s, requests {warm['requests']}, writes {warm['writes']}",
            ),
            (
                "watcher pass in-process, targeted at one edited ConfigMap: CPU / wall (median)",
                f"{targeted['cpu_s_median']:.3f} / {targeted['wall_s_median']:.3f} s, requests {targeted['requests']}, writes {targeted['writes']}",
            ),
        ]
        if "rss_mib" in wp:
            m = wp["rss_mib"]
            out.append(
                (
                    f"watcher pass in-process RSS, own / jq child: before and after {targeted['runs']} targeted passes",
                    f"{m['before_own']} / {m['before_child']} -> {m['after_own']} / {m['after_child']} MiB",
                )
            )
    h = result.get("hook")
    if h:
        sync, ins, ev = h["synchronization"], h["in_sync_event"], h["edit_events"]
        out += [
            (
                "hook, Synchronization (creates N): wall / CPU / max RSS",
                f"{sync['wall_s']:.2f} s / {sync['cpu_s']:.2f} s / {sync['max_rss_mib']} MiB",
            ),
            (
                f"hook, one in-sync Modified Event (median of {ins.get('runs', 1)}): wall / CPU / max RSS",
                f"{ins['wall_s']:.2f} s / {ins['cpu_s']:.2f} s / {ins['max_rss_mib']} MiB",
            ),
            (
                "hook, in-sync Event: requests / writes / exit codes",
                f"{ins['requests']} {methods(ins['by_method'])} / {ins['writes']} / {ins.get('exit_codes', [ins['exit_code']])}",
            ),
            (
                f"hook, one edited ConfigMap per Event ({ev['count']} runs): wall median / max, CPU, RSS",
                f"{ev['wall_s_median']:.2f} / {ev['wall_s_max']:.2f} s, {ev['cpu_s_median']:.2f} s, {ev['max_rss_mib_max']} MiB",
            ),
            (
                "hook, per edit Event: requests / writes / exit codes",
                f"{ev['requests']} / {ev['writes']} / {ev['exit_codes']}",
            ),
        ]
    choice = result.get("concurrency_choice")
    if choice:
        out.append(
            (
                "cold-create curve: the suggested --max-in-flight (below)",
                f"{choice['max_in_flight']} ({choice['wall_s']:.2f} s, best {choice['best_wall_s']:.2f} s, "
                f"{choice['speedup_vs_first']}x the narrowest)",
            )
        )
    return out


def curve_table(curve: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| --max-in-flight | wall | Connect's share (summed upstream, / wall) | CPU | requests | writes "
        "| 409s | exit | connectors after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in curve:
        share = r["connect_upstream_s"] / r["wall_s"] if r["wall_s"] else 0.0
        lines.append(
            f"| {r['max_in_flight']} | {r['wall_s']:.2f} s | {r['connect_upstream_s']:.2f} s ({share:.0%}) "
            f"| {r['cpu_s']:.2f} s | {r['requests']} {methods(r['by_method'])} | {r['writes']} "
            f"| {r['conflicts_409']} | {r['exit_code']} | {r['connectors_after']} |"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Commit `{report['commit']}`, measured {report['date']} by `bench/run.py` "
        f"(total {report.get('total_s', 0):.0f} s).",
        "",
        "```sh norun a benchmark: minutes of load against a real worker, figures not a test",
        report["command"],
        "```",
        "",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}",
        f"- Python {m['python']}; Kafka {m['kafka_version']} (KRaft, one broker) and one Connect worker "
        f"(Connect reports {report.get('connect_version', '?')}) from `tests/harness/connect_kit.py`; "
        "kube-apiserver + etcd from `tests/harness/apiserver_kit.py`; all on 127.0.0.1.",
        "- Fixtures: N ConfigMaps, one connector each (a jq template: a FileStreamSource connector with "
        '`"state": "stopped"`, `$TOPIC_PREFIX` from a properties dir, `env.BENCH_DATA_DIR`).',
        "- Every request to Connect goes through `tests/harness/fault_proxy.FaultProxy` (no rules): it counts "
        "the requests, and its `before_forward`/`after_forward` hooks time each one upstream (\"Connect's "
        'share": the summed time Connect took to answer; with several requests in flight it can exceed the wall).',
        "- CLI: `connect-reconciler apply DIR --properties-dir P --connect-url PROXY` in a subprocess; CPU is "
        "user+sys from `os.wait4` (the jq sandbox child included). No ledger (the CLI default). Max RSS is "
        "`ru_maxrss` of the subprocess, which counts the bench's own pages until `exec`: an upper bound.",
        "- Watcher: `connect-reconciler run --namespace NS --connect-url PROXY --kubeconfig K --properties-dir P "
        "--health-address 127.0.0.1:0 --resync-seconds 3600`, otherwise defaults (the debounce is part of every "
        "edit latency), Events on, no ledger (no `--ledger-namespace`, no POD_NAMESPACE), no leader election. "
        "Edit latency: from the return of `patch_namespaced_config_map` to the PUT of that connector's config "
        f"arriving at the proxy; after each edit the bench waits until the proxy has been quiet for {QUIET_SECONDS} s.",
        "- Render: `bench/render_isolation.py --count N` (its JSON is in benchmarks.json); jq compile time: "
        "`jq.compile` of each of its N wrapped programs, in the bench process; both before Kafka and the API "
        "server start.",
        "- Where measured (newer bench): the watcher's pass loop in-process (`bench/watcher_pass.py`), the hook "
        "per binding context (`hooks/connect-reconciler` in a subprocess, snapshot of N objects), and the "
        "cold-create curve over `--max-in-flight` (at the largest N).",
        "",
    ]
    for result in report["results"]:
        lines += [f"## N = {result['n']}", ""]
        if result.get("note"):
            lines += [result["note"], ""]
        lines += ["| Figure | Value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows(result)]
        lines.append("")
        if result.get("concurrency"):
            lines += [
                f"Cold-create curve at N = {result['n']}: `connect-reconciler apply` from an empty worker "
                "at each `--max-in-flight` (Connect's share sums the upstream time of requests that "
                "overlap, so above 1 it can exceed the wall).",
                "",
                *curve_table(result["concurrency"]),
                "",
            ]
    if report.get("missing"):
        lines += ["## Not measured", "", *[f"- {item}" for item in report["missing"]], ""]
    lines += [f"Raw figures: `{report.get('json_name', 'benchmarks.json')}` next to this file.", ""]
    return "\n".join(lines)


def save(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    report["json_name"] = out.with_suffix(".json").name
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.write_text(markdown(report))


def parse_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,1000", help="fleet sizes, comma-separated")
    parser.add_argument(
        "--edits", default="100", help="edits per size: one number, or one per size (comma-separated)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="in-sync apply runs per size (the median is shown)"
    )
    parser.add_argument(
        "--out", default="docs/benchmarks.md", help="Markdown report; the JSON goes next to it"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (fixtures, kit data, logs)")
    parser.add_argument(
        "--concurrency", default="1,2,4,8", help="--max-in-flight values for the cold-create curve ('' skips)"
    )
    parser.add_argument("--hook-edits", type=int, default=20, help="hook runs with one edited ConfigMap each")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated, of {', '.join(PHASES)}; without watcher no kube-apiserver is started",
    )
    options = parser.parse_args(argv)
    sizes, edits = parse_ints(options.sizes), parse_ints(options.edits)
    if len(edits) == 1:
        edits *= len(sizes)
    if len(edits) != len(sizes):
        parser.error("--edits takes one number or one per size")
    out = Path(options.out) if Path(options.out).is_absolute() else ROOT / options.out
    phases = {part.strip() for part in options.phases.split(",") if part.strip()}
    if phases - set(PHASES):
        parser.error(f"unknown phases: {sorted(phases - set(PHASES))}; known: {', '.join(PHASES)}")
    if not options.concurrency:
        phases.discard("curve")

    work = Path(tempfile.mkdtemp(prefix="connect-reconciler-bench-"))
    report: dict[str, Any] = {
        "baseline": "before (issue 10)",
        "commit": git_head(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": ".venv/bin/python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "phases": [phase for phase in PHASES if phase in phases],
        "results": [],
        "missing": [
            "the watcher with an ownership ledger (`--ledger-namespace`/POD_NAMESPACE): every run here has none",
        ],
    }
    started = time.perf_counter()
    print(f"bench: working in {work}", file=sys.stderr)

    def progress(message: str) -> None:
        print(f"bench [{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    results: dict[int, dict[str, Any]] = {
        n: {"n": n, "edits_requested": e} for n, e in zip(sizes, edits, strict=True)
    }
    for n, e in zip(sizes, edits, strict=True):
        if e < max(edits):
            results[n]["note"] = (
                f"Only {e} edits at this size (others: {max(edits)}), to fit the time budget."
            )
    for n in sizes if "render" in phases else ():  # before the kits start: Kafka's work would slow it
        progress(f"render N={n}")
        results[n]["render"] = measure_render(n, log=work / f"render-{n}.log")

    kit, api = ConnectKit(work / "connect-kit"), ApiServerKit(work / "apiserver")
    ok = False
    finished: set[int] = set()
    try:
        progress("starting Kafka + Connect")
        kit.start()
        progress(f"Kafka + Connect up in {kit.startup_seconds:.1f} s")
        if "watcher" in phases:
            progress("starting kube-apiserver + etcd")
            api.start()
            progress("kube-apiserver up")
        with FaultProxy(kit.connect_url) as proxy, httpx.Client(base_url=kit.connect_url, timeout=60) as http:
            report["connect_version"] = http.get("/").json().get("version")
            clock = ProxyClock(proxy)
            data_dir = kit.data_dir
            for n, e in zip(sizes, edits, strict=True):
                result = results[n]
                if "cli" in phases:
                    progress(f"N={n}: CLI cold + in-sync apply")
                    result["cli"] = measure_cli(
                        n,
                        work=work,
                        proxy=proxy,
                        clock=clock,
                        http=http,
                        data_dir=data_dir,
                        repeats=options.repeats,
                    )
                if "watcher" in phases:
                    progress(f"N={n}: watcher, {e} edits")
                    result["watcher"] = measure_watcher(
                        n, e, work=work, proxy=proxy, clock=clock, http=http, api=api, data_dir=data_dir
                    )
                if "watcher-pass" in phases:
                    progress(f"N={n}: watcher passes in-process")
                    result["watcher_pass"] = measure_watcher_pass(n, work=work, proxy=proxy, http=http)
                if "hook" in phases:
                    progress(f"N={n}: hook, {options.hook_edits} edit events")
                    result["hook"] = measure_hook(
                        n, options.hook_edits, work=work, proxy=proxy, http=http, data_dir=data_dir
                    )
                if "curve" in phases and n == max(sizes):
                    progress(f"N={n}: cold-create curve at --max-in-flight {options.concurrency}")
                    result["concurrency"] = measure_concurrency(
                        n,
                        parse_ints(options.concurrency),
                        work=work,
                        proxy=proxy,
                        clock=clock,
                        http=http,
                        data_dir=data_dir,
                    )
                    result["concurrency_choice"] = curve_choice(result["concurrency"])
                finished.add(n)
                report["results"] = [r for m, r in results.items() if m in finished]
                report["total_s"] = time.perf_counter() - started
                save(report, out)
                progress(f"N={n} done: {json.dumps(result)}")
        ok = True
    finally:
        api.stop()
        kit.stop()
        report["results"] = [r for m, r in results.items() if m in finished]
        unfinished = [n for n in sizes if n not in finished]
        if unfinished:
            report["missing"].append(f"sizes {unfinished}: not finished ({'error' if not ok else 'skipped'})")
        report["total_s"] = time.perf_counter() - started
        save(report, out)
        if options.keep or not ok:
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    progress(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
