"""Plans, reports and statuses as text (optionally coloured) or JSON.

Pure: returns strings. Every string that leaves here has passed `Redactor.scrub`; config values in a plan
were masked by the planner already, and actions' raw configs are never printed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from reconciler.core.redaction import Redactor
from reconciler.core.status import StatusRow
from reconciler.model import (
    ActionKind,
    ConnectorPlan,
    DesiredConnector,
    Outcome,
    Plan,
    Problem,
    Report,
)

_COLORS = {"green": "32", "yellow": "33", "red": "31", "cyan": "36", "dim": "2", "bold": "1"}
_SYMBOL = {
    ActionKind.CREATE: ("+", "green"),
    ActionKind.UPDATE: ("~", "yellow"),
    ActionKind.DELETE: ("-", "red"),
    ActionKind.PAUSE: ("~", "cyan"),
    ActionKind.RESUME: ("~", "cyan"),
    ActionKind.STOP: ("~", "cyan"),
    ActionKind.RESTART: ("~", "yellow"),
}


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, style: str) -> str:
        return f"\x1b[{_COLORS[style]}m{text}\x1b[0m" if self.color else text


def _q(value: str | None) -> str:
    return "(none)" if value is None else json.dumps(value)


def _plan_lines(cp: ConnectorPlan, paint: _Painter) -> list[str]:
    where = f"  ({cp.source})" if cp.source else ""
    cluster = f" @{cp.cluster}"
    waiting = f" ({cp.waiting}; the next pass decides its state)" if cp.waiting else ""
    restart = f" ({cp.restart})" if cp.restart else ""
    if cp.in_sync and cp.reason:
        return [paint(f"! {cp.connector}{cluster}: not deleted: {cp.reason}", "yellow") + where]
    if cp.in_sync:
        state = f" [{cp.live_state}]" if cp.live_state else ""
        # No restart planned, but a failing connector's note (backoff, limit reached) is worth a look.
        return [paint(f"= {cp.connector}{cluster}: in sync{state}{waiting}", "dim")] + (
            [paint(f"    [{cp.live_state}]{restart}", "yellow")] if restart else []
        )
    lines = []
    for action in cp.actions:
        symbol, style = _SYMBOL[action.kind]
        detail = ""
        if action.kind is ActionKind.CREATE:
            detail = f" ({', then '.join(action.wire_steps)})"
        elif action.kind in (ActionKind.PAUSE, ActionKind.RESUME, ActionKind.STOP):
            detail = f" (state {cp.live_state} -> {cp.desired_state.value if cp.desired_state else '?'})"
        elif action.kind is ActionKind.RESTART:
            detail = restart
        elif action.kind is ActionKind.DELETE and cp.reason:
            detail = f" ({cp.reason})"
        lines.append(paint(f"{symbol} {action.kind.value} {cp.connector}{cluster}{detail}", style) + where)
    if cp.recreated and cp.reason:
        lines.append(paint(f"    ! {cp.reason}", "yellow"))
    if waiting:
        lines.append(paint(f"    [{cp.live_state}]{waiting}", "dim"))
    if restart and not any(a.kind is ActionKind.RESTART for a in cp.actions):
        lines.append(paint(f"    [{cp.live_state}]{restart}", "yellow"))
    for change in cp.changes:
        if change.before is None:
            lines.append(paint(f"    + {change.key} = {_q(change.after)}", "green"))
        elif change.after is None:
            lines.append(paint(f"    - {change.key} = {_q(change.before)}", "red"))
        else:
            lines.append(paint(f"    ~ {change.key}: {_q(change.before)} -> {_q(change.after)}", "yellow"))
    return lines


def _counts(plan: Plan) -> dict[str, int]:
    counts = {kind.value: 0 for kind in ActionKind}
    for action in plan.actions:
        counts[action.kind.value] += 1
    counts["in_sync"] = sum(1 for c in plan.connectors if c.in_sync and not c.reason)
    counts["held"] = sum(1 for c in plan.connectors if c.in_sync and c.reason)
    return counts


def _problem_dict(p: Problem) -> dict[str, Any]:
    return {
        "message": p.message,
        "configmap": p.source.configmap if p.source else None,
        "key": p.source.key if p.source else None,
        "connector": p.connector,
        "cluster": p.cluster,
    }


def _outcome_dict(o: Outcome) -> dict[str, Any]:
    return {
        "action": o.action.kind.value,
        "connector": o.action.connector,
        "cluster": o.action.cluster,
        "ok": o.ok,
        "skipped": o.skipped,
        "message": o.message,
        "http_status": o.http_status,
    }


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "summary": {**_counts(report.plan), "problems": len(report.problems)},
        "connectors": [
            {
                "connector": c.connector,
                "cluster": c.cluster,
                "configmap": c.source.configmap if c.source else None,
                "key": c.source.key if c.source else None,
                "actions": [a.kind.value for a in c.actions],
                "wire_steps": [step for a in c.actions for step in a.wire_steps],
                "waiting": c.waiting,
                "restart": c.restart,
                "reason": c.reason,
                "recreated": c.recreated,
                "live_state": c.live_state,
                "desired_state": c.desired_state.value if c.desired_state else None,
                "changes": [
                    {"key": ch.key, "before": ch.before, "after": ch.after, "secret": ch.secret}
                    for ch in c.changes
                ],
            }
            for c in report.plan.connectors
        ],
        "outcomes": [_outcome_dict(o) for o in report.outcomes],
        "problems": [_problem_dict(p) for p in report.problems],
    }


def render_json(report: Report, *, redactor: Redactor) -> str:
    return json.dumps(redactor.scrub_tree(report_dict(report)), indent=2, sort_keys=False)


def render_text(report: Report, *, redactor: Redactor, color: bool = False) -> str:
    paint = _Painter(color)
    lines: list[str] = []
    for cp in report.plan.connectors:
        lines.extend(_plan_lines(cp, paint))
    if report.outcomes:
        lines.append("")
        for o in report.outcomes:
            mark = paint("ok", "green") if o.ok else paint("SKIPPED" if o.skipped else "FAILED", "red")
            detail = "" if o.ok else f": {o.message}"
            lines.append(f"{o.action.kind.value} {o.action.connector} @{o.action.cluster}: {mark}{detail}")
    for p in report.problems:
        lines.append(paint("! error: ", "red") + str(p))
    c = _counts(report.plan)
    verb = "Plan" if report.dry_run else "Applied"
    restarts = f"{c['restart']} to restart, " if c["restart"] else ""  # shown only when there are some
    restarts += f"{c['held']} not deleted, " if c["held"] else ""
    lines.append(
        paint(
            f"{verb}: {c['create']} to create, {c['update']} to update, {c['delete']} to delete, "
            f"{c['pause'] + c['resume'] + c['stop']} state changes, {restarts}{c['in_sync']} in sync, "
            f"{len(report.problems)} error(s).",
            "bold",
        )
    )
    return redactor.scrub("\n".join(lines))


def render_connectors(desired: Sequence[DesiredConnector], *, redactor: Redactor, as_json: bool) -> str:
    """The `render` command: rendered connectors, secret values masked."""
    docs = [
        {
            "name": d.name,
            "cluster": d.cluster,
            "state": d.state.value,
            "enabled": d.enabled,
            "source": str(d.source),
            "config": redactor.mask_config(d.config, secret_keys=d.secret_keys),
        }
        for d in desired
    ]
    if as_json:
        return redactor.scrub(json.dumps(redactor.scrub_tree(docs), indent=2))
    lines = []
    for doc in docs:
        state = doc["state"] if doc["enabled"] else "disabled: deleted if present"
        lines.append(f"# {doc['source']} -> {doc['name']} @{doc['cluster']} ({state})")
        lines.append(json.dumps({"name": doc["name"], "config": doc["config"]}, indent=2))
    return redactor.scrub("\n".join(lines))


_STATUS_COLUMNS = (
    "CONNECTOR",
    "CLUSTER",
    "DESIRED",
    "LIVE",
    "TASKS",
    "DRIFT",
    "LAST ACTION",
    "RESTARTS",
    "RECREATED",
    "ERROR",
)


def _tasks(tasks: Sequence[str]) -> str:
    if not tasks:
        return "-"
    counts = Counter(tasks)
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _status_cells(r: StatusRow) -> tuple[str, ...]:
    drift = "-" if r.drift is None else ("yes" if r.drift else "no")
    if r.last_action:
        last = f"{r.last_action} {'ok' if r.last_error is None else 'failed'} {r.last_at or ''}".strip()
    else:
        last = "-"
    return (
        r.connector,
        r.cluster,
        r.desired + ("" if r.managed is not False else " (not managed)"),
        r.live or "MISSING",
        _tasks(r.tasks),
        drift,
        last,
        str(r.restarts),
        str(r.recreated),
        " ".join((r.last_error or "-").split()),
    )


def render_status(rows: Sequence[StatusRow], *, redactor: Redactor, as_json: bool = False) -> str:
    """The `status` command: a table of every declared or managed connector (or JSON), scrubbed."""
    if as_json:
        docs = [
            {
                "connector": r.connector,
                "cluster": r.cluster,
                "desired": r.desired,
                "live": r.live,
                "tasks": list(r.tasks),
                "drift": r.drift,
                "managed": r.managed,
                "last_action": r.last_action,
                "last_at": r.last_at,
                "last_error": r.last_error,
                "restarts": r.restarts,
                "recreated": r.recreated,
                "ok": r.ok,
            }
            for r in rows
        ]
        return redactor.scrub(json.dumps(redactor.scrub_tree(docs), indent=2))
    table = [_STATUS_COLUMNS, *(_status_cells(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(_STATUS_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    return redactor.scrub("\n".join(lines))
