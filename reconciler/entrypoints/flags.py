"""Every flag of every entry point, declared once: the CLI's argparse parser and the hook's environment
reader are both built from this table, and both produce the same `Settings` tree.

Edge (reads the environment it is given). Each flag can also be set as CONNECT_RECONCILER_<FLAG>
(`--connect-url` -> CONNECT_RECONCILER_CONNECT_URL); repeatable flags take ':'-separated lists there.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.redaction import DEFAULT_SECRET_NAME_PATTERN
from reconciler.errors import ConfigError
from reconciler.settings import (
    ConnectSettings,
    InputSettings,
    LeaderSettings,
    LedgerSettings,
    LogSettings,
    RenderSettings,
    Settings,
    TelemetrySettings,
    WatchSettings,
    split_userinfo,
)

ENV_PREFIX = "CONNECT_RECONCILER_"
# Which commands take a flag: every one, those that talk to Connect, `run` (and the hook), plan, status.
COMMON, REMOTE, RUN, PLAN, STATUS = "common", "remote", "run", "plan", "status"
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    help: str
    default: str | None = None
    scope: str = COMMON
    many: bool = False
    kind: Callable[[str], Any] = str
    choices: tuple[str, ...] = ()
    switch: bool = False  # takes no value; in the environment 1/true/yes/on
    short: str | None = None

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


FLAGS: tuple[Flag, ...] = (
    Flag("--selector", "label selector for connector ConfigMaps", "destination=connect"),
    Flag("--properties-dir", "directory of *.properties files bound as $VARS (repeatable)", many=True),
    Flag(
        "--secret-dir",
        "mounted Secret volume, [NAME=]PATH, read as $secrets.NAME.KEY (repeatable)",
        many=True,
    ),
    Flag(
        "--files-dir",
        "mounted ConfigMap volume, [NAME=]PATH, read as $files.NAME.KEY (repeatable)",
        many=True,
    ),
    Flag("--env-allow", "regex of environment variable names templates may read", ".*"),
    Flag(
        "--secret-env-pattern",
        "regex of env/property variable names whose values are secret",
        DEFAULT_SECRET_NAME_PATTERN,
    ),
    Flag("--secret-env", "an environment variable whose value is secret (repeatable)", many=True),
    Flag(
        "--secret-provider",
        "render $secrets.NAME.KEY as a config-provider placeholder the worker resolves, ${directory:PATH:KEY} "
        "(the worker needs config.providers=directory), instead of the value itself: directory for every "
        "--secret-dir, NAME=directory for one, NAME=none to exempt one (repeatable)",
        many=True,
    ),
    Flag(
        "--secret-worker-dir",
        "where the Connect worker mounts a --secret-dir volume, NAME=PATH (repeatable; default: the same path)",
        many=True,
    ),
    Flag(
        "--properties-provider",
        "file: render properties whose variable names match --secret-env-pattern as ${file:PATH:key} for "
        "the worker's FileConfigProvider (config.providers=file), instead of the value itself",
        "none",
        choices=("none", "file"),
    ),
    Flag(
        "--properties-worker-dir",
        "where the Connect worker mounts a --properties-dir, LOCAL=WORKER (repeatable; default: the same path)",
        many=True,
    ),
    Flag("--render-timeout", "seconds one template may run before it is an error", "2", kind=float),
    Flag("--render-memory", "MiB of memory one template may use before it is an error", "256", kind=int),
    Flag(
        "--max-config-bytes",
        "largest connector config accepted, in bytes (Kafka's config topic takes ~1 MB records)",
        "1000000",
        kind=int,
    ),
    Flag("--log-level", "log level", "warning", choices=("debug", "info", "warning", "error")),
    Flag("--log-format", "log format", "console", choices=("console", "json")),
    Flag("--audit-file", "append every audit record (JSON lines) to this file", scope=REMOTE),
    Flag(
        "--identity",
        "this replica's name in audit records, Events and the Lease (default: POD_NAME, hostname)",
        scope=REMOTE,
    ),
    Flag("--output", "output format", "text", choices=("text", "json"), short="-o"),
    Flag("--color", "colour the output", "auto", choices=("auto", "always", "never")),
    Flag(
        "--validate",
        "also run Connect's config validation for every desired connector",
        scope=PLAN,
        switch=True,
    ),
    Flag(
        "--wait",
        "seconds to wait for every connector to reach its desired state (exit 1 if not)",
        "0",
        STATUS,
        kind=float,
    ),
    Flag("--connect-url", "URL of the default Kafka Connect cluster", scope=REMOTE),
    Flag("--clusters-file", "YAML file naming Connect clusters with URL, auth and TLS", scope=REMOTE),
    Flag("--retry-seconds", "total time budget for retrying one request", "120", REMOTE, kind=float),
    Flag(
        "--max-in-flight",
        "connectors written at once per Connect cluster (each connector's steps stay in order)",
        "8",
        REMOTE,
        kind=int,
    ),
    Flag(
        "--namespace",
        "namespace to watch (repeatable; '*' = all namespaces; default: default)",
        None,
        RUN,
        many=True,
    ),
    Flag("--kubeconfig", "kubeconfig file (default: in-cluster, then ~/.kube/config)", scope=REMOTE),
    Flag(
        "--ledger-namespace",
        "namespace of the ownership ledger ConfigMaps (run and the hook default to the pod's namespace)",
        scope=REMOTE,
    ),
    Flag("--ledger-file", "a ledger exported by `ledger export`, read-only: plan shows prunes", scope=PLAN),
    Flag(
        "--adopt",
        "adopt this existing connector into the ledger (repeatable; '*' = every declared one)",
        scope=REMOTE,
        many=True,
    ),
    Flag("--max-deletes", "most prunes per pass and cluster before they are blocked", "5", REMOTE, kind=int),
    Flag(
        "--max-delete-ratio",
        "largest share of a cluster's connectors pruned in one pass (from 2 deletes up)",
        "0.5",
        REMOTE,
        kind=float,
    ),
    Flag(
        "--auto-restart",
        "restart FAILED connectors and tasks with a growing backoff (templates override: autoRestart)",
        "on",
        REMOTE,
        choices=("on", "off"),
    ),
    Flag(
        "--max-restarts",
        "automatic restarts per connector before it is left to you (default: no limit)",
        scope=REMOTE,
        kind=int,
    ),
    Flag(
        "--prune-grace-seconds",
        "wait this long before pruning; declaring the connector again cancels the delete",
        "0",
        REMOTE,
        kind=float,
    ),
    Flag(
        "--resync-seconds",
        "reconcile at least this often, repairing drift made in Connect",
        "60",
        RUN,
        kind=float,
    ),
    Flag(
        "--debounce-seconds",
        "reconcile once no event has come for this long (a burst of events becomes one pass; at most 2 s)",
        "0.1",
        RUN,
        kind=float,
    ),
    Flag(
        "--inputs-poll-seconds",
        "check mounted Secrets and properties files this often; a change re-renders every template (0: never)",
        "5",
        RUN,
        kind=float,
    ),
    Flag("--metrics-address", "HOST:PORT for Prometheus /metrics ('' disables)", "", RUN),
    Flag("--events", "Kubernetes Events on the source ConfigMaps", "on", RUN, choices=("on", "off")),
    Flag(
        "--leader-election",
        "run only while holding the Lease (for several replicas)",
        "off",
        RUN,
        choices=("on", "off"),
    ),
    Flag("--lease-name", "the coordination.k8s.io Lease", "connect-reconciler", RUN),
    Flag("--lease-namespace", "namespace of the Lease (default: the ledger's)", scope=RUN),
    Flag(
        "--lease-duration",
        "seconds a follower waits without a renewal before taking over",
        "15",
        RUN,
        kind=float,
    ),
    Flag(
        "--renew-deadline",
        "seconds the leader keeps trying to renew before it stops and exits",
        "10",
        RUN,
        kind=float,
    ),
    Flag("--retry-period", "seconds between Lease attempts", "2", RUN, kind=float),
    Flag("--health-address", "HOST:PORT for /healthz and /readyz ('' disables)", "0.0.0.0:8080", RUN),
    Flag("--resync-crontab", "the hook's resync schedule (shell-operator crontab)", "* * * * *", RUN),
    Flag(
        "--hook-index",
        "file where the hook remembers which connector each template declares, so a run for one "
        "ConfigMap's Event renders only that ConfigMap (no configs, no secrets; 'off': render all)",
        "",
        RUN,
    ),
)


def env_list(environ: Mapping[str, str], name: str) -> list[str]:
    """A list-valued variable (CONNECT_RECONCILER_<NAME>), ':'-separated."""
    return [v for v in environ.get(ENV_PREFIX + name, "").split(os.pathsep) if v]


def _env_value(flag: Flag, environ: Mapping[str, str]) -> Any:
    if flag.many:
        return env_list(environ, flag.dest.upper())
    raw = environ.get(flag.env)
    if flag.switch:
        return raw is not None and raw.lower() in _TRUE
    return raw if raw is not None else flag.default


def add_flags(parser: argparse.ArgumentParser, scope: str, environ: Mapping[str, str]) -> None:
    for flag in FLAGS:
        if flag.scope != scope:
            continue
        default = _env_value(flag, environ)
        shown = f" (default {flag.default})" if flag.default not in (None, "") else ""
        kwargs: dict[str, Any] = {"default": default, "help": f"{flag.help}{shown} [env {flag.env}]"}
        names = [flag.name, flag.short] if flag.short else [flag.name]
        if flag.switch:
            parser.add_argument(*names, action="store_true", **kwargs)
            continue
        if flag.many:
            # An empty list from the env means "not set": argparse then keeps None for --namespace.
            kwargs.update(action="append", default=default or None)
        else:
            # argparse applies `type=` to string defaults too, so a bad env value fails like a bad flag.
            kwargs["type"] = flag.kind
        if flag.choices:
            kwargs["choices"] = list(flag.choices)
        parser.add_argument(*names, **kwargs)


def _namespaces(values: list[str] | None) -> tuple[str | None, ...]:
    names = values or ["default"]
    return (None,) if "*" in names else tuple(names)


def settings_from_values(values: Mapping[str, Any]) -> Settings:
    """The settings tree from flag values keyed by `Flag.dest` (absent keys take the defaults)."""

    def many(dest: str) -> tuple[str, ...]:
        return tuple(values.get(dest) or ())

    url = values.get("connect_url")
    username = password = None
    if url:
        try:
            url, username, password = split_userinfo(url)
        except ValueError:
            # The text is not echoed: it may hold a password.
            raise ConfigError("--connect-url (CONNECT_RECONCILER_CONNECT_URL) is not a valid URL") from None
    render = RenderSettings(
        timeout_s=float(values.get("render_timeout", 2.0)),
        memory_mib=int(values.get("render_memory", 256)),
        max_config_bytes=int(values.get("max_config_bytes", 1_000_000)),
    )
    if render.timeout_s <= 0 or render.memory_mib < 64 or render.max_config_bytes < 1024:
        raise ConfigError(
            "--render-timeout must be > 0, --render-memory at least 64 (MiB), --max-config-bytes at least 1024"
        )
    return Settings(
        selector=values.get("selector") or "destination=connect",
        inputs=InputSettings(
            properties_dirs=many("properties_dir"),
            secret_dirs=many("secret_dir"),
            files_dirs=many("files_dir"),
            env_allow=values.get("env_allow", ".*"),
            secret_env_pattern=values.get("secret_env_pattern", DEFAULT_SECRET_NAME_PATTERN),
            secret_env=many("secret_env"),
            secret_providers=_providers(many("secret_provider")),
            secret_worker_dirs=many("secret_worker_dir"),
            properties_provider=values.get("properties_provider") or "none",
            properties_worker_dirs=many("properties_worker_dir"),
        ),
        render=render,
        connect=ConnectSettings(
            url=url,
            clusters_file=values.get("clusters_file"),
            retry_seconds=float(values.get("retry_seconds", 120.0)),
            max_in_flight=max(1, int(values.get("max_in_flight", 8))),
            username=username,
            password=password,
        ),
        ledger=LedgerSettings(
            namespace=values.get("ledger_namespace") or None,
            file=values.get("ledger_file") or None,
            max_deletes=int(values.get("max_deletes", 5)),
            max_delete_ratio=float(values.get("max_delete_ratio", 0.5)),
            grace_seconds=float(values.get("prune_grace_seconds", 0.0)),
            adopt=many("adopt"),
            auto_restart=values.get("auto_restart", "on") != "off",
            max_restarts=int(values["max_restarts"]) if values.get("max_restarts") is not None else None,
        ),
        watch=WatchSettings(
            namespaces=_namespaces(values.get("namespace")),
            kubeconfig=values.get("kubeconfig"),
            resync_seconds=float(values.get("resync_seconds", 60.0)),
            debounce_seconds=float(values.get("debounce_seconds", 0.1)),
            inputs_poll_seconds=float(values.get("inputs_poll_seconds", 5.0)),
            health_address=values.get("health_address", "0.0.0.0:8080"),
            resync_crontab=values.get("resync_crontab", "* * * * *"),
            hook_index=values.get("hook_index") or "",
        ),
        telemetry=TelemetrySettings(
            audit_file=values.get("audit_file") or None,
            metrics_address=values.get("metrics_address") or "",
            events=values.get("events", "on") != "off",
            identity=values.get("identity") or None,
        ),
        leader=_leader(values),
        logging=LogSettings(
            level=values.get("log_level", "warning"), format=values.get("log_format", "console")
        ),
    )


_SECRET_PROVIDERS = ("none", "directory")


def _providers(specs: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse a misspelt provider here, before anything renders: a typo must never send the value."""
    for spec in specs:
        provider = spec.rpartition("=")[2]
        if provider not in _SECRET_PROVIDERS or spec.startswith("="):
            raise ConfigError(
                f"--secret-provider {spec!r}: expected one of {', '.join(_SECRET_PROVIDERS)}, "
                "alone or as NAME=PROVIDER"
            )
    return specs


def _leader(values: Mapping[str, Any]) -> LeaderSettings:
    leader = LeaderSettings(
        enabled=values.get("leader_election", "off") == "on",
        lease_name=values.get("lease_name") or "connect-reconciler",
        namespace=values.get("lease_namespace") or None,
        lease_duration_s=float(values.get("lease_duration", 15.0)),
        renew_deadline_s=float(values.get("renew_deadline", 10.0)),
        retry_period_s=float(values.get("retry_period", 2.0)),
    )
    # client-go's rule: a leader must give up before a follower may take over, with time to retry.
    if not leader.lease_duration_s > leader.renew_deadline_s > 1.2 * leader.retry_period_s > 0:
        raise ConfigError("--lease-duration > --renew-deadline > 1.2 x --retry-period > 0 must hold")
    return leader


def settings_from_environ(environ: Mapping[str, str]) -> Settings:
    """For the hook, which has no command line: every flag from its CONNECT_RECONCILER_* variable."""
    values: dict[str, Any] = {}
    for flag in FLAGS:
        value = _env_value(flag, environ)
        if value is not None and not flag.many and not flag.switch:
            try:
                value = flag.kind(value)
            except ValueError:
                raise ConfigError(f"{flag.env}={value!r}: expected a {flag.kind.__name__}") from None
            if flag.choices and value not in flag.choices:
                raise ConfigError(f"{flag.env}={value!r}: expected one of {', '.join(flag.choices)}")
        values[flag.dest] = value
    return settings_from_values(values)
