"""docs/benchmarks.md from two runs of `bench/run.py` on one machine: issue 10's targets, before -> after.

    .venv/bin/python -m bench.compare BEFORE.json AFTER.json --notes NOTES.md --out docs/benchmarks.md

Both runs come from the same command (`bench/run.py --sizes 100,500,1000 --edits 100`); BEFORE is the
code before issue 10 (its bench measured less: the rows it lacks show "—"). NOTES is Markdown appended
as written (profiles, misses and why). The full tables of both runs follow.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import markdown

Get = Callable[[dict[str, Any]], Any]


def _dig(result: dict[str, Any], *keys: str) -> Any:
    value: Any = result
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


TARGETS: list[tuple[str, str, Get]] = [
    (
        "edit -> PUT at Connect, p50 / p99",
        "p99 ≤ 300 ms",
        lambda r: (
            f"{_num(_dig(r, 'watcher', 'edits', 'p50_ms'), '.0f')} / "
            f"{_num(_dig(r, 'watcher', 'edits', 'p99_ms'), '.0f')} ms"
        ),
    ),
    (
        "requests to Connect per single-ConfigMap event",
        "≤ 2",
        lambda r: _num(_dig(r, "watcher", "edits", "requests_per_event"), ""),
    ),
    (
        "hook, one edited ConfigMap per Event: wall median / max",
        "≤ 0.4 s",
        lambda r: (
            f"{_num(_dig(r, 'hook', 'edit_events', 'wall_s_median'), '.2f')} / "
            f"{_num(_dig(r, 'hook', 'edit_events', 'wall_s_max'), '.2f')} s"
        ),
    ),
    (
        "in-sync resync inside the watcher: reconciler CPU (warm)",
        "≤ 0.5 s",
        lambda r: f"{_num(_dig(r, 'watcher_pass', 'warm_full', 'cpu_s_median'), '.3f')} s",
    ),
    (
        "in-sync apply, a cold CLI process: wall (median of 3) / CPU",
        "≤ 1.5 s",
        lambda r: (
            f"{_num(_dig(r, 'cli', 'in_sync_apply', 'wall_s'), '.2f')} / "
            f"{_num(_dig(r, 'cli', 'in_sync_apply', 'cpu_s'), '.2f')} s"
        ),
    ),
    (
        "in-sync apply: requests / writes",
        "≤ 3 / 0",
        lambda r: (
            f"{_dig(r, 'cli', 'in_sync_apply', 'requests')} / {_dig(r, 'cli', 'in_sync_apply', 'writes')}"
        ),
    ),
    (
        "watcher RSS after the initial sync / after 100 edits (own)",
        "≤ 80 MB, flat",
        lambda r: (
            f"{_num(_dig(r, 'watcher', 'rss_after_initial_sync', 'watcher_mib'), '')} / "
            f"{_num(_dig(r, 'watcher', 'rss_after_edits', 'watcher_mib'), '')} MiB"
        ),
    ),
    (
        "watcher RSS after the edits, with its jq sandbox child",
        "",
        lambda r: f"{_num(_dig(r, 'watcher', 'rss_after_edits', 'with_children_mib'), '')} MiB",
    ),
    (
        "pass loop in-process, own RSS before -> after 1,000 targeted passes",
        "flat",
        lambda r: (
            "—"
            if _dig(r, "watcher_pass", "rss_mib") is None
            else "{before_own} -> {after_own} MiB (jq child {before_child} -> {after_child})".format(
                **r["watcher_pass"]["rss_mib"]
            )
        ),
    ),
    (
        "cold create of N: wall",
        "shorter, no more 409s",
        lambda r: f"{_num(_dig(r, 'cli', 'cold_apply', 'wall_s'), '.1f')} s",
    ),
    (
        "render, warm, simple templates: in-process / sandbox",
        "≥ 20,000/s",
        lambda r: (
            f"{_num(_dig(r, 'render', 'render_isolation', 'simple_in_process_warm_per_s'), ',')} / "
            f"{_num(_dig(r, 'render', 'render_isolation', 'simple_sandbox_warm_per_s'), ',')} per s"
        ),
    ),
    (
        "render, warm, the configmaps/-shaped templates: in-process / sandbox",
        "",
        lambda r: (
            f"{_num(_dig(r, 'render', 'render_isolation', 'in_process_warm_per_s'), ',')} / "
            f"{_num(_dig(r, 'render', 'render_isolation', 'sandbox_warm_per_s'), ',')} per s"
        ),
    ),
    (
        "render, cold (every template compiled): sandbox",
        "",
        lambda r: f"{_num(_dig(r, 'render', 'render_isolation', 'sandbox_cold_per_s'), ',')} per s",
    ),
    (
        "jq compile per template, as the pipeline compiles",
        "",
        lambda r: (
            f"{_num(_dig(r, 'render', 'jq_compile_batched_us_per_template') or _dig(r, 'render', 'jq_compile_us_mean'), '')} µs"
        ),
    ),
]


def by_n(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["n"]: r for r in report["results"]}


def compare(before: dict[str, Any], after: dict[str, Any], notes: str) -> str:
    b, a = by_n(before), by_n(after)
    sizes = sorted(set(b) & set(a))
    m = after["machine"]
    lines = [
        "# Benchmarks: issue 10, before and after",
        "",
        f"One machine ({m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, Kafka/Connect {m['kafka_version']}), one command:",
        "",
        "```sh norun a benchmark: minutes of load against a real worker, figures not a test",
        ".venv/bin/python -m bench.run --sizes 100,500,1000 --edits 100 --out docs/benchmarks.md",
        "```",
        "",
        f"- before: commit `{before['commit']}` (the code issue 10 started from, with its bench), {before['date']};",
        f"- after: commit `{after['commit']}`, {after['date']};",
        "- composed by `.venv/bin/python -m bench.compare docs/benchmarks-before.json docs/benchmarks.json`;",
        "  the full tables of both runs follow the notes. Never a CI gate: figures, not tests.",
        "",
    ]
    for n in sizes:
        lines += [f"## Targets at N = {n}", "", "| Figure | Target | Before | After |", "|---|---|---|---|"]
        lines += [f"| {name} | {target} | {get(b[n])} | {get(a[n])} |" for name, target, get in TARGETS]
        lines.append("")
    curve = a[max(a)].get("concurrency") if a else None
    if curve:
        lines += [
            f"## Cold create of {max(a)}: the curve over `--max-in-flight`",
            "",
            "| in flight | wall | Connect, summed over requests | 409s | exit |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['max_in_flight']} | {r['wall_s']:.1f} s | {r['connect_upstream_s']:.1f} s | "
            f"{r['conflicts_409']} | {r['exit_code']} |"
            for r in curve
        ]
        lines.append("")
    lines += [notes.strip(), ""]
    after_md = markdown(after | {"json_name": "benchmarks.json"}).replace("# Benchmarks", "# After", 1)
    before_md = markdown(before | {"json_name": "benchmarks-before.json"}).replace(
        "# Benchmarks", "# Before", 1
    )
    for text in (after_md, before_md):
        # One level down: "# After" -> "## After", each "## N = ..." -> "### N = ...".
        lines += ["#" + text.replace("\n## ", "\n### ").strip(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--notes", default=None)
    parser.add_argument("--out", default="docs/benchmarks.md")
    options = parser.parse_args(argv)
    before = json.loads(Path(options.before).read_text())
    after = json.loads(Path(options.after).read_text())
    notes = Path(options.notes).read_text() if options.notes else ""
    Path(options.out).write_text(compare(before, after, notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
