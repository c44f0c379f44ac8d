"""`connect-reconciler` command line: render, plan (dry run), apply, status; ledger export, approve-deletes.

Edge: parses flags (each also settable as CONNECT_RECONCILER_<FLAG>, see `flags.py`), loads inputs and
ConfigMaps, calls the pipeline, prints. Exit codes: 0 ok / in sync, 1 error, 2 `plan` found pending
changes. `run` (the watcher) is dispatched by `entrypoints/main.py`, so the entry points stay apart.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.core.redaction import Redactor
from reconciler.entrypoints.flags import (
    COMMON,
    PLAN,
    REMOTE,
    RUN,
    STATUS,
    add_flags,
    env_list,
    settings_from_values,
)
from reconciler.errors import ReconcilerError

# The commands import what they use when they run: `--help`, a bad flag or setting, and `run` (the
# watcher, dispatched by main.py) need none of the pipeline, httpx or structlog (~0.15 s of start-up).
if TYPE_CHECKING:
    import httpx

    from reconciler.core.ledger import Ledger
    from reconciler.model import DesiredConnector, Problem
    from reconciler.runtime import Runtime
    from reconciler.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "paths",
        nargs="*",
        default=env_list(environ, "PATHS"),
        help="ConfigMap YAML files or directories (env CONNECT_RECONCILER_PATHS, ':'-separated)",
    )
    add_flags(common, COMMON, environ)
    remote = argparse.ArgumentParser(add_help=False)
    add_flags(remote, REMOTE, environ)

    parser = argparse.ArgumentParser(prog="connect-reconciler", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("render", parents=[common], help="print the rendered connectors, secrets masked")
    plan = sub.add_parser("plan", parents=[common, remote], help="dry run: show what apply would change")
    add_flags(plan, PLAN, environ)
    sub.add_parser("apply", parents=[common, remote], help="make Kafka Connect match the ConfigMaps")
    status = sub.add_parser("status", parents=[common, remote], help="live state of every declared connector")
    add_flags(status, STATUS, environ)
    ledger = sub.add_parser("ledger", parents=[common, remote], help="the ownership ledger: export it")
    ledger.add_argument("action", choices=["export"], help="export: print every cluster's ledger as JSON")
    approve = sub.add_parser(
        "approve-deletes",
        parents=[common, remote],
        help="lift a prune block: approve the deletes blocked until now (not later ones)",
    )
    approve.add_argument("--cluster", action="append", help="the cluster (repeatable; default: every one)")
    watch = sub.add_parser(
        "run", parents=[common, remote], help="watch ConfigMaps in Kubernetes and reconcile continuously"
    )
    add_flags(watch, RUN, environ)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    return settings_from_values(vars(args))


def execute(
    args: argparse.Namespace,
    settings: Settings,
    *,
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    http_hooks: Sequence[Callable[[httpx.Request], Any]] = (),
    transport: httpx.BaseTransport | None = None,
) -> int:
    """render, plan, apply or status, as parsed into `args`."""
    from reconciler.clients.sources import load_configmaps  # noqa: PLC0415 - see the imports above
    from reconciler.logs import configure_logging, use_redactor  # noqa: PLC0415
    from reconciler.model import Problem  # noqa: PLC0415
    from reconciler.pipeline import reconcile, render_all  # noqa: PLC0415
    from reconciler.report import render_json, render_text  # noqa: PLC0415
    from reconciler.runtime import audit_log, open_runtime  # noqa: PLC0415

    out, err = stdout, stderr
    configure_logging(level=settings.logging.level, fmt=settings.logging.format, stream=err)
    color = args.color == "always" or (args.color == "auto" and out.isatty() and "NO_COLOR" not in environ)
    redactor = Redactor()
    try:
        if args.command in ("ledger", "approve-deletes"):
            return _ledger_command(args, settings, environ=environ, out=out)
        from_ledger = args.command == "status" and settings.ledger.enabled
        if not args.paths and not from_ledger:
            raise ReconcilerError("no ConfigMap paths given (arguments or CONNECT_RECONCILER_PATHS)")
        # apply writes, and `plan --output json` is what a pipeline keeps: both leave audit records.
        audited = args.command == "apply" or (args.command == "plan" and args.output == "json")
        with ExitStack() as stack:
            observers = [stack.enter_context(audit_log(settings, environ))] if audited else []
            rt = stack.enter_context(
                open_runtime(
                    settings,
                    environ=environ,
                    with_clusters=args.command != "render",
                    http_hooks=http_hooks,
                    transport=transport,
                    observers=observers,
                )
            )
            redactor = rt.redactor
            use_redactor(redactor)
            for w in rt.warnings:
                print(redactor.scrub(f"warning: {w}"), file=err)
            docs, source_errors = load_configmaps(args.paths)
            problems = [Problem(str(e)) for e in source_errors]
            if args.command in ("render", "status"):
                desired = render_all(docs, renderer=rt.renderer, selector=rt.selector)
                problems += desired.problems
                show = _render if args.command == "render" else _status
                ok = show(args, rt, desired.connectors, problems, out=out)
                for p in problems:
                    print(redactor.scrub(f"error: {p}"), file=err)
                return EXIT_OK if ok and not problems else EXIT_ERROR
            if rt.ledger is None and args.command == "plan":
                print(
                    "note: no ledger (--ledger-namespace or --ledger-file): deletes of connectors whose "
                    "ConfigMap was removed cannot be shown",
                    file=err,
                )
            report = reconcile(
                docs,
                rt=rt,
                dry_run=args.command == "plan",
                validate=getattr(args, "validate", False),
                problems=problems,
            )
        if args.output == "json":
            print(render_json(report, redactor=redactor), file=out)
        else:
            print(render_text(report, redactor=redactor, color=color), file=out)
        if not report.ok:
            return EXIT_ERROR
        return EXIT_CHANGES if report.dry_run and report.plan.has_changes else EXIT_OK
    except ReconcilerError as exc:
        print(redactor.scrub(f"error: {exc}"), file=err)
        return EXIT_ERROR


def _render(
    args: argparse.Namespace,
    rt: Runtime,
    desired: Sequence[DesiredConnector],
    problems: list[Problem],
    *,
    out: TextIO,
) -> bool:
    from reconciler.report import render_connectors  # noqa: PLC0415 - see the imports above

    print(render_connectors(desired, redactor=rt.redactor, as_json=args.output == "json"), file=out)
    return True


def _status(
    args: argparse.Namespace,
    rt: Runtime,
    desired: Sequence[DesiredConnector],
    problems: list[Problem],
    *,
    out: TextIO,
) -> bool:
    """Every declared connector (and, with a ledger, every managed one) against its live state; with
    --wait, until all are settled or the time is up. False unless all are as desired."""
    from reconciler.core.status import status_rows  # noqa: PLC0415 - see the imports above
    from reconciler.model import Problem  # noqa: PLC0415
    from reconciler.ownership import blocked_problem, read_ledgers  # noqa: PLC0415
    from reconciler.pipeline import observe  # noqa: PLC0415
    from reconciler.report import render_status  # noqa: PLC0415

    ledgers: dict[str, Ledger] | None = None
    if rt.ledger is not None:
        ledgers, ledger_problems = read_ledgers(rt.ledger, sorted(rt.clients))
        problems += ledger_problems
    owned = [c for c, lg in (ledgers or {}).items() if lg.entries]
    deadline = time.monotonic() + args.wait
    while True:
        live, observe_problems = observe(desired, rt.clients, retry=rt.retry, also=owned)
        rows = status_rows(desired, live, ledgers)
        if all(r.ok for r in rows) or time.monotonic() >= deadline:
            break
        rt.clock.sleep(1.0)
    print(render_status(rows, redactor=rt.redactor, as_json=args.output == "json"), file=out)
    problems += observe_problems
    problems += [blocked_problem(lg) for lg in (ledgers or {}).values() if lg.blocked_since]
    pending = [r.connector for r in rows if not r.ok]
    if pending:
        problems.append(Problem(f"not in the desired state: {', '.join(pending)}"))
    return not pending and not any(lg.blocked_since for lg in (ledgers or {}).values())


def _ledger_command(
    args: argparse.Namespace, settings: Settings, *, environ: Mapping[str, str], out: TextIO
) -> int:
    """`ledger export` and `approve-deletes`: the ledgers of every configured cluster."""
    from reconciler.clients.clusters import load_clusters  # noqa: PLC0415 - see the imports above
    from reconciler.clock import SystemClock  # noqa: PLC0415
    from reconciler.core.ledger import ledger_to_file  # noqa: PLC0415
    from reconciler.runtime import audit_log, ledger_store  # noqa: PLC0415

    store = ledger_store(settings)
    if store is None:
        raise ReconcilerError(
            f"{args.command} needs --ledger-namespace (the namespace of the ledger ConfigMaps)"
        )
    clusters, _default = load_clusters(settings.connect, environ=environ)
    names = sorted(clusters)
    if args.command == "ledger":
        print(ledger_to_file({c: store.read(c) for c in names}), file=out)
        return EXIT_OK
    from reconciler.clients.ledger_store import KubeLedgerStore  # noqa: PLC0415 - kubernetes is slow to import

    if not isinstance(store, KubeLedgerStore):
        raise ReconcilerError("approve-deletes writes the ledger: use --ledger-namespace, not --ledger-file")
    for cluster in args.cluster or names:
        if cluster not in clusters:
            raise ReconcilerError(f"approve-deletes: unknown cluster {cluster!r} (known: {', '.join(names)})")
        ledger = store.read(cluster)
        stamp = store.approve(cluster, now=SystemClock().now())
        with audit_log(settings, environ) as audit:
            audit.approval(
                cluster, stamp, approved_by=environ.get("USER"), blocked_reason=ledger.blocked_reason
            )
        blocked = (
            f"blocked since {ledger.blocked_since}: {ledger.blocked_reason}"
            if ledger.blocked_since
            else "nothing blocked now"
        )
        print(f"approved deletes on cluster {cluster} at {stamp} ({blocked})", file=out)
    return EXIT_OK
