"""Benchmark: a cold `connect-reconciler render` process over N ConfigMap files (no Connect needed).

`plan` and `apply` read and render exactly as `render` does before they talk to Connect, so this is
their start-up and parsing share. Fixtures are `bench/run.py`'s (one ConfigMap per connector, a jq
template each) written into a temp dir. Measures, each in a fresh interpreter:

1. YAML: `load_configmaps` over the N files (listing, reading, parsing), with libyaml and with the
   pure-Python loader only, wall and CPU;
2. imports: the sum of `-X importtime` self times of `python -m reconciler --help`;
3. `python -m reconciler render DIR`: wall and CPU, medians of `--repeats`;
4. with `--profile`: that render under `python -m pyinstrument` (the `profile` extra), its text report.

    .venv/bin/python -m bench.cold_cli [--count 1000] [--repeats 5] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import write_fixtures

_PARSE = """
import sys, time
from reconciler.core import specs
if sys.argv[2] == "python":
    specs._FastLoader = None
from reconciler.clients.sources import load_configmaps
start, cpu = time.perf_counter(), time.process_time()
docs, errors = load_configmaps([sys.argv[1]])
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
assert not errors and len(docs) == int(sys.argv[3]), (errors[:3], len(docs))
print(elapsed, cpu)
"""
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (.*)")


def parse_seconds(cms: Path, n: int, loader: str) -> tuple[float, float]:
    """(wall, CPU) of reading and parsing the N files in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _PARSE, str(cms), loader, str(n)], capture_output=True, text=True, check=True
    )
    wall, cpu = out.stdout.split()
    return float(wall), float(cpu)


def import_seconds() -> tuple[float, list[tuple[float, str]]]:
    """Total self time of every import of `--help`, and the slowest top-level packages (cumulative)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciler", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    total, top = 0, []
    for line in done.stderr.splitlines():
        if m := _IMPORT_LINE.match(line):
            total += int(m.group(1))
            if not m.group(3).startswith(" "):
                top.append((int(m.group(2)) / 1e6, m.group(3)))
    return total / 1e6, sorted(top, reverse=True)[:8]


def render_seconds(cmd: list[str], env: dict[str, str], repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (the process and the children it waited for: the jq sandbox) of each run. On a
    shared machine the CPU figure moves far less than the wall one."""
    walls, cpus = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - start)
        child.returncode = os.waitstatus_to_exitcode(status)
        assert child.returncode == 0, child.returncode
        cpus.append(usage.ru_utime + usage.ru_stime)
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also print a pyinstrument profile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cold-cli-", dir="/tmp") as tmp:
        root = Path(tmp)
        cms, props = write_fixtures(root, "cold", args.count)
        env = {**os.environ, "BENCH_DATA_DIR": str(root), "NO_COLOR": "1"}
        render = ["-m", "reconciler", "render", str(cms), "--properties-dir", str(props)]
        imports, top = import_seconds()
        walls, cpus = render_seconds([sys.executable, *render], env, args.repeats)
        result = {
            "files": args.count,
            "load_libyaml_wall_cpu_s": [round(t, 3) for t in parse_seconds(cms, args.count, "libyaml")],
            "load_python_wall_cpu_s": [round(t, 3) for t in parse_seconds(cms, args.count, "python")],
            "help_import_s": round(imports, 3),
            "help_slowest_imports": [f"{name} {s:.3f}" for s, name in top],
            "render_wall_median_s": round(statistics.median(walls), 3),
            "render_cpu_median_s": round(statistics.median(cpus), 3),
            "render_wall_s": [round(t, 3) for t in walls],
        }
        print(json.dumps(result, indent=2))
        if args.profile:
            report = root / "profile.txt"
            profile = [sys.executable, "-m", "pyinstrument", "-o", str(report), *render]
            subprocess.run(profile, env=env, stdout=subprocess.DEVNULL, check=True)
            print(report.read_text())


if __name__ == "__main__":
    main()
