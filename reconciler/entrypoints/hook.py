"""The shell-operator hook: the same pipeline, fed by binding contexts instead of a watch.

Edge. `--config` prints the bindings (fast: no network). A run reads `$BINDING_CONTEXT_PATH`, takes the
full ConfigMap set from it (or lists it from the API server when no context carries it), and
reconciles. Exit codes follow shell-operator's retry model: non-zero only for transient trouble
(Connect or the API server unreachable, retries exhausted), which shell-operator retries every 5 s;
permanent per-connector errors (bad template, 400) are logged and exit 0, so one broken ConfigMap
never blocks the queue. Every flag is read from CONNECT_RECONCILER_* variables.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

import structlog

from reconciler.core.bindings import hook_config, parse_binding_contexts
from reconciler.core.selectors import parse_selector
from reconciler.core.specs import configmap_from_object
from reconciler.entrypoints.settings import apply_configmaps, load_runtime
from reconciler.errors import ConnectApiError, ReconcilerError
from reconciler.logs import configure_logging, use_redactor
from reconciler.model import ConfigMapDoc, Problem, Report

log = structlog.get_logger("reconciler.hook")
EXIT_OK, EXIT_RETRY = 0, 1


def _namespaces(environ: Mapping[str, str]) -> list[str]:
    value = environ.get("CONNECT_RECONCILER_NAMESPACE", "default")
    return [] if value.strip() == "*" else [n for n in value.split(os.pathsep) if n]


def transient(report: Report) -> bool:
    """Failures worth a retry by shell-operator: Connect unreachable, 5xx, 409 after the retry budget."""
    status_retry = any(
        not o.ok and (o.http_status is None or o.http_status >= 500 or o.http_status == 409)
        for o in report.outcomes
    )
    unobserved = any(p.message.startswith("cannot read the state of cluster") for p in report.problems)
    return status_retry or unobserved


def _list_configmaps(namespaces: Sequence[str], selector: str, kubeconfig: str | None) -> list[ConfigMapDoc]:
    from reconciler.clients.kube import ConfigMapWatcher  # noqa: PLC0415 - keeps --config free of the kube client
    from reconciler.entrypoints.watcher import kube_api_client  # noqa: PLC0415

    api = kube_api_client(kubeconfig)
    docs: list[ConfigMapDoc] = []
    for ns in namespaces or [None]:  # type: ignore[list-item]
        items, _ = ConfigMapWatcher(
            api, namespace=ns, selector=selector, on_list=lambda *_: None, on_event=lambda *_: None
        ).list()
        docs.extend(configmap_from_object(o) for o in items)
    return docs


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
) -> int:
    from reconciler.entrypoints.cli import build_parser  # noqa: PLC0415 - cli imports this module's siblings

    environ = dict(os.environ if environ is None else environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    out = stdout or sys.stdout
    if "--config" in argv:
        selector = parse_selector(environ.get("CONNECT_RECONCILER_SELECTOR", "destination=connect"))
        crontab = environ.get("CONNECT_RECONCILER_RESYNC_CRONTAB", "* * * * *")
        print(
            json.dumps(
                hook_config(selector=selector, namespaces=_namespaces(environ), resync_crontab=crontab)
            ),
            file=out,
        )
        return EXIT_OK
    args = build_parser(environ).parse_args(["apply"])
    configure_logging(level=args.log_level, fmt="json", stream=sys.stderr)
    try:
        rt = load_runtime(args, environ)
        use_redactor(rt.redactor)
        path = environ.get("BINDING_CONTEXT_PATH")
        if not path:
            raise ReconcilerError("BINDING_CONTEXT_PATH is not set (is this running under shell-operator?)")
        binding = parse_binding_contexts(json.loads(Path(path).read_text(encoding="utf-8")))
        docs = (
            list(binding.configmaps)
            if binding.configmaps is not None
            else _list_configmaps(
                _namespaces(environ), args.selector, environ.get("CONNECT_RECONCILER_KUBECONFIG")
            )
        )
        report = apply_configmaps(
            rt,
            docs,
            deleted=binding.deleted,
            retry_seconds=args.retry_seconds,
            problems=[Problem(str(e)) for e in binding.errors],
        )
    except (ReconcilerError, ConnectApiError, OSError, ValueError) as exc:
        log.error("hook run failed; shell-operator will retry", error=str(exc))
        return EXIT_RETRY
    for outcome in report.outcomes:
        log.info(
            "connector change",
            action=outcome.action.kind.value,
            connector=outcome.action.connector,
            ok=outcome.ok,
            message=outcome.message,
        )
    for problem in report.problems:
        log.error("reconcile problem", problem=str(problem))
    return EXIT_RETRY if transient(report) else EXIT_OK
