"""The shell-operator hook: the same pipeline, fed by binding contexts instead of a watch.

Edge. `--config` prints the bindings (fast: no network). A run reads `$BINDING_CONTEXT_PATH`, takes the
full ConfigMap set from it (or lists it from the API server when no context carries it), and
reconciles. Exit codes follow shell-operator's retry model: non-zero only for transient trouble
(Connect or the API server unreachable, retries exhausted), which shell-operator retries every 5 s;
permanent errors (bad template, 400, a 500 Connect will always give, an unreadable properties file or
Secret volume) are logged and exit 0, so one broken input never blocks the queue. Settings come from CONNECT_RECONCILER_* variables.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import structlog

from reconciler.core.bindings import hook_config, parse_binding_contexts
from reconciler.core.selectors import parse_selector
from reconciler.core.specs import configmap_from_object
from reconciler.entrypoints.flags import settings_from_environ
from reconciler.errors import ConfigError, ConnectApiError, ReconcilerError, SourceError
from reconciler.logs import configure_logging, current_redactor, use_redactor
from reconciler.model import ConfigMapDoc, Problem, Report
from reconciler.pass_memory import DeclarationIndex
from reconciler.pipeline import reconcile
from reconciler.runtime import audit_log, identity, ledger_store, open_runtime, own_namespace
from reconciler.settings import Settings
from reconciler.telemetry import Observer

log = structlog.get_logger("reconciler.hook")
EXIT_OK, EXIT_RETRY = 0, 1


def transient(report: Report) -> bool:
    """Failures worth a retry by shell-operator: Connect unreachable, 5xx, 409 after the retry budget."""
    return any(p.retryable for p in report.problems)


def _list_configmaps(settings: Settings) -> tuple[list[ConfigMapDoc], list[SourceError]]:
    """The full set from the API server, for contexts that carry none (no snapshots, no Synchronization);
    an unusable object is an error for that ConfigMap, not for the run."""
    from reconciler.clients.kube import ConfigMapApi, kube_api_client  # noqa: PLC0415 - --config stays fast

    docs: list[ConfigMapDoc] = []
    errors: list[SourceError] = []
    for ns in settings.watch.namespaces:
        try:
            api = kube_api_client(settings.watch.kubeconfig)
            source = ConfigMapApi(api, namespace=ns, selector=settings.selector, settings=settings.watch)
            items, _ = source.list()
        except Exception as exc:  # any failed list: never reconcile a partial set, let shell-operator retry
            raise ReconcilerError(
                f"cannot list ConfigMaps in namespace {ns or '*'}: {type(exc).__name__}: "
                f"{getattr(exc, 'reason', None) or exc}"
            ) from None
        for item in items:
            try:
                docs.append(configmap_from_object(item))
            except SourceError as exc:
                errors.append(exc)
    return docs, errors


@contextmanager
def _event_recorder(
    settings: Settings, environ: Mapping[str, str], *, enabled: bool
) -> Iterator[list[Observer]]:
    """Events on the source ConfigMaps, when the hook runs in a cluster (it has a namespace); the queue
    is given two seconds at the end of the run: a hook is short."""
    if not (enabled and settings.telemetry.events):
        yield []
        return
    from reconciler.clients.events import EventRecorder  # noqa: PLC0415 - --config stays fast
    from reconciler.clients.kube import kube_api_client  # noqa: PLC0415

    try:
        api = kube_api_client(settings.watch.kubeconfig)
    except Exception:  # no credentials: Events are a courtesy, never a reason to fail the run
        yield []
        return
    recorder = EventRecorder(api, instance=identity(settings, environ), redactor=current_redactor)
    try:
        yield [recorder]
    finally:
        recorder.close(timeout=2.0)


# shell-operator sets these per run, to new temp files (pkg/hook/hook.go, v1.5.3): they are the hook's
# protocol, not configuration, and a template that saw them would render differently every run.
HOOK_RUN_VARIABLES = frozenset(
    {
        "BINDING_CONTEXT_PATH",
        "METRICS_PATH",
        "CONVERSION_RESPONSE_PATH",
        "VALIDATING_RESPONSE_PATH",
        "ADMISSION_RESPONSE_PATH",
        "KUBERNETES_PATCH_PATH",
    }
)


def _template_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in HOOK_RUN_VARIABLES}


def _declaration_index(settings: Settings) -> DeclarationIndex | None:
    where = settings.watch.hook_index
    if where == "off":
        return None
    if not where:
        where = str(Path(tempfile.gettempdir()) / f"connect-reconciler-{os.getuid()}" / "declarations.json")
    return DeclarationIndex(Path(where))


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
) -> int:
    environ = dict(os.environ if environ is None else environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    out = stdout or sys.stdout
    try:
        settings = settings_from_environ(environ)
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RETRY
    if "--config" in argv:
        namespaces = [ns for ns in settings.watch.namespaces if ns is not None]
        config = hook_config(
            selector=parse_selector(settings.selector),
            namespaces=namespaces,
            resync_crontab=settings.watch.resync_crontab,
        )
        print(json.dumps(config), file=out)
        return EXIT_OK
    configure_logging(level=settings.logging.level, fmt="json", stream=sys.stderr)
    try:
        path = environ.get("BINDING_CONTEXT_PATH")
        if not path:
            raise ReconcilerError("BINDING_CONTEXT_PATH is not set (is this running under shell-operator?)")
        binding = parse_binding_contexts(json.loads(Path(path).read_text(encoding="utf-8")))
        namespace = own_namespace(settings.ledger, environ)
        ledger = ledger_store(settings, namespace=namespace) if namespace else None
        with (
            audit_log(settings, environ) as audit,
            _event_recorder(settings, environ, enabled=namespace is not None) as events,
            open_runtime(
                settings, environ=_template_env(environ), ledger=ledger, observers=[audit, *events]
            ) as rt,
        ):
            use_redactor(rt.redactor)
            errors = list(binding.errors)
            if binding.configmaps is not None:
                docs = list(binding.configmaps)
            else:
                docs, listed_errors = _list_configmaps(settings)
                errors += listed_errors
            report = reconcile(
                docs,
                rt=rt,
                dry_run=False,
                deleted=binding.deleted,
                problems=[Problem(str(e)) for e in errors],
                changed=binding.changed if binding.configmaps is not None else None,
                index=_declaration_index(settings),
            )
    except ConfigError as exc:
        # A broken properties file or Secret volume stays broken until someone fixes it: retrying every
        # 5 s would only block the queue. The next event or resync tries again with the fixed files.
        log.error("hook run failed; nothing reconciled until the input is fixed", error=str(exc))
        return EXIT_OK
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
