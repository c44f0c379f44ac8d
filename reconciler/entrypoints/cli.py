"""`connect-reconciler` command line: render, plan (dry run), apply, status.

Edge: parses flags (each also settable as CONNECT_RECONCILER_<FLAG>), loads inputs and ConfigMaps, calls
the pipeline, prints. Exit codes: 0 ok / in sync, 1 error, 2 `plan` found pending changes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import httpx

from reconciler.clients.connect import ConnectClient
from reconciler.clients.sources import load_configmaps
from reconciler.core.planning import unconverged
from reconciler.core.redaction import DEFAULT_SECRET_NAME_PATTERN, Redactor
from reconciler.entrypoints.settings import Runtime, connected, load_runtime, reconcile_with
from reconciler.entrypoints.watcher import run_watcher
from reconciler.errors import ReconcilerError
from reconciler.logs import configure_logging, use_redactor
from reconciler.model import ConfigMapDoc, Problem
from reconciler.pipeline import observe, render_all
from reconciler.report import render_connectors, render_json, render_status, render_text
from reconciler.retrying import RetryPolicy

ENV_PREFIX = "CONNECT_RECONCILER_"
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


class _Env:
    """Defaults from the environment, so every flag can be set as CONNECT_RECONCILER_<FLAG>."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, flag: str, default: str | None = None) -> str | None:
        # argparse applies `type=` to string defaults too, so a bad env value fails like a bad flag.
        return self.environ.get(_env_name(flag), default)

    def many(self, flag: str) -> list[str]:
        value = self.environ.get(_env_name(flag), "")
        return [v for v in value.split(os.pathsep) if v]

    def flag(self, flag: str) -> bool:
        return self.environ.get(_env_name(flag), "").lower() in {"1", "true", "yes", "on"}


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    env = _Env(environ)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "paths",
        nargs="*",
        default=env.many("--paths"),
        help="ConfigMap YAML files or directories (env CONNECT_RECONCILER_PATHS, ':'-separated)",
    )
    common.add_argument(
        "--selector",
        default=env.text("--selector", "destination=connect"),
        help="label selector for connector ConfigMaps (default destination=connect)",
    )
    common.add_argument(
        "--properties-dir",
        action="append",
        default=env.many("--properties-dir"),
        help="directory of *.properties files bound as $VARS (repeatable)",
    )
    common.add_argument(
        "--secret-dir",
        action="append",
        default=env.many("--secret-dir"),
        help="mounted Secret volume, [NAME=]PATH, read as $secrets.NAME.KEY (repeatable)",
    )
    common.add_argument(
        "--files-dir",
        action="append",
        default=env.many("--files-dir"),
        help="mounted ConfigMap volume, [NAME=]PATH, read as $files.NAME.KEY (repeatable)",
    )
    common.add_argument(
        "--env-allow",
        default=env.text("--env-allow", ".*"),
        help="regex of environment variable names templates may read (default all)",
    )
    common.add_argument(
        "--secret-env-pattern",
        default=env.text("--secret-env-pattern", DEFAULT_SECRET_NAME_PATTERN),
        help="regex of env/property variable names whose values are secret",
    )
    common.add_argument(
        "--secret-env",
        action="append",
        default=env.many("--secret-env"),
        help="an environment variable whose value is secret (repeatable)",
    )
    common.add_argument(
        "--log-level",
        default=env.text("--log-level", "warning"),
        choices=["debug", "info", "warning", "error"],
    )
    common.add_argument(
        "--log-format", default=env.text("--log-format", "console"), choices=["console", "json"]
    )
    common.add_argument("--output", "-o", default=env.text("--output", "text"), choices=["text", "json"])
    common.add_argument("--color", default=env.text("--color", "auto"), choices=["auto", "always", "never"])

    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--connect-url", default=env.text("--connect-url"), help="URL of the default Kafka Connect cluster"
    )
    remote.add_argument(
        "--clusters-file",
        default=env.text("--clusters-file"),
        help="YAML file naming Connect clusters with URL, auth and TLS",
    )
    remote.add_argument(
        "--retry-seconds",
        type=float,
        default=env.text("--retry-seconds", "120"),
        help="total time budget for retrying one request (default 120)",
    )

    parser = argparse.ArgumentParser(prog="connect-reconciler", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("render", parents=[common], help="print the rendered connectors, secrets masked")
    plan = sub.add_parser("plan", parents=[common, remote], help="dry run: show what apply would change")
    plan.add_argument(
        "--validate",
        action="store_true",
        default=env.flag("--validate"),
        help="also run Connect's config validation for every desired connector",
    )
    sub.add_parser("apply", parents=[common, remote], help="make Kafka Connect match the ConfigMaps")
    status = sub.add_parser("status", parents=[common, remote], help="live state of every declared connector")
    status.add_argument(
        "--wait",
        type=float,
        default=env.text("--wait", "0"),
        help="seconds to wait for every connector to reach its desired state (exit 1 if not)",
    )
    watch = sub.add_parser(
        "run", parents=[common, remote], help="watch ConfigMaps in Kubernetes and reconcile continuously"
    )
    watch.add_argument(
        "--namespace",
        action="append",
        default=env.many("--namespace") or None,
        help="namespace to watch (repeatable; '*' = all namespaces; default: default)",
    )
    watch.add_argument(
        "--kubeconfig",
        default=env.text("--kubeconfig"),
        help="kubeconfig file (default: in-cluster, then ~/.kube/config)",
    )
    watch.add_argument(
        "--resync-seconds",
        type=float,
        default=env.text("--resync-seconds", "60"),
        help="reconcile at least this often, repairing drift made in Connect (default 60)",
    )
    watch.add_argument(
        "--debounce-seconds",
        type=float,
        default=env.text("--debounce-seconds", "1"),
        help="wait this long after an event for more before reconciling (default 1)",
    )
    watch.add_argument(
        "--health-address",
        default=env.text("--health-address", "0.0.0.0:8080"),
        help="HOST:PORT for /healthz and /readyz ('' disables; default 0.0.0.0:8080)",
    )
    return parser


def run(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    http_hooks: Sequence[Callable[[httpx.Request], Any]] = (),
    transport: httpx.BaseTransport | None = None,
) -> int:
    environ = dict(os.environ if environ is None else environ)
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = build_parser(environ).parse_args(argv)
    configure_logging(level=args.log_level, fmt=args.log_format, stream=err)
    color = args.color == "always" or (args.color == "auto" and out.isatty() and "NO_COLOR" not in environ)
    redactor = Redactor()
    try:
        if args.command == "run":
            return run_watcher(args, environ)
        if not args.paths:
            raise ReconcilerError("no ConfigMap paths given (arguments or CONNECT_RECONCILER_PATHS)")
        rt = load_runtime(args, environ, with_clusters=args.command != "render")
        redactor = rt.redactor
        use_redactor(redactor)
        for w in rt.warnings:
            print(redactor.scrub(f"warning: {w}"), file=err)
        docs, source_errors = load_configmaps(args.paths)
        problems = [Problem(str(e)) for e in source_errors]
        if args.command == "render":
            desired = render_all(
                docs, inputs=rt.inputs, selector=rt.selector, default_cluster=rt.default_cluster
            )
            print(
                render_connectors(desired.connectors, redactor=redactor, as_json=args.output == "json"),
                file=out,
            )
            for p in [*problems, *desired.problems]:
                print(redactor.scrub(f"error: {p}"), file=err)
            return EXIT_ERROR if problems or desired.problems else EXIT_OK
        with connected(rt, event_hooks={"request": list(http_hooks)}, transport=transport) as clients:
            if args.command == "status":
                return _status(args, rt, clients, docs, problems, out=out, err=err)
            report = reconcile_with(
                rt,
                docs,
                clients,
                dry_run=args.command == "plan",
                validate=getattr(args, "validate", False),
                retry_seconds=args.retry_seconds,
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


def _status(
    args: argparse.Namespace,
    rt: Runtime,
    clients: Mapping[str, ConnectClient],
    docs: Sequence[ConfigMapDoc],
    problems: list[Problem],
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    """Live state of every declared connector; with --wait, until all are settled or the time is up."""
    desired = render_all(docs, inputs=rt.inputs, selector=rt.selector, default_cluster=rt.default_cluster)
    retry = RetryPolicy(max_seconds=args.retry_seconds)
    deadline = time.monotonic() + args.wait
    while True:
        live, observe_problems = observe(desired.connectors, clients, retry=retry)
        pending = unconverged(desired.connectors, live)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    print(render_status(desired.connectors, live, redactor=rt.redactor), file=out)
    for p in [*problems, *desired.problems, *observe_problems]:
        print(rt.redactor.scrub(f"error: {p}"), file=err)
    if pending:
        print(f"not in the desired state: {', '.join(pending)}", file=err)
    return EXIT_ERROR if problems or desired.problems or observe_problems or pending else EXIT_OK


def main() -> None:
    raise SystemExit(run())
