"""A real single-node Kafka (KRaft, broker+controller) and a Kafka Connect distributed worker, assembled from
Maven Central jars and run with `java -cp` on 127.0.0.1. Used by the integration tests and `make demo`.

Jars stay in ~/.m2; resolved classpaths are cached in ${CONNECT_RECONCILER_CACHE:-~/.cache/connect-reconciler}.
Nothing is downloaded into the repository.

    python -m tests.harness.connect_kit start --data-dir DIR   # start (or reuse) and print the Connect URL
    python -m tests.harness.connect_kit url --data-dir DIR
    python -m tests.harness.connect_kit stop --data-dir DIR
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from tests.harness.processes import KitError, free_port, http_ok, pid_alive, spawn, terminate, wait_ready

KAFKA_VERSION = os.environ.get("CONNECT_RECONCILER_KAFKA_VERSION", "4.1.2")
HERE = Path(__file__).resolve().parent
POMS = HERE / "kafka-jars"
DEP_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
JVM_LIGHT = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k", "-Djava.awt.headless=true"]
STATE_FILE = "kit-state.json"


def cache_dir() -> Path:
    root = os.environ.get("CONNECT_RECONCILER_CACHE") or str(Path.home() / ".cache" / "connect-reconciler")
    return Path(root) / f"kafka-{KAFKA_VERSION}"


def require_tools() -> None:
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        raise KitError(f"{' and '.join(missing)} not found: run `make tools` (installs Java 17 and Maven)")


def classpath(kind: str) -> str:
    """The runtime classpath of `kind` ("broker", "connect" or "debezium"), resolved once by Maven and cached."""
    out = cache_dir() / f"{kind}.classpath"
    if not out.exists() or out.stat().st_mtime < (POMS / f"{kind}.pom.xml").stat().st_mtime:
        require_tools()
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POMS / f"{kind}.pom.xml"),
            f"-Dkafka.version={KAFKA_VERSION}",
            f"{DEP_PLUGIN}:build-classpath",
            "-DincludeScope=runtime",
            f"-Dmdep.outputFile={out}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0 or not out.exists():
            raise KitError(
                f"maven could not resolve the {kind} classpath:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
    return out.read_text().strip()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


FAILING_CONNECTOR = HERE / "failing-connector"
DEBEZIUM_PLUGIN = "debezium-postgres"


def install_debezium_plugin(plugins_dir: Path) -> Path:
    """Copy the Debezium PostgreSQL connector's runtime jars (kafka-jars/debezium.pom.xml, resolved once
    into ~/.m2 and the classpath cache) into a plugin directory of their own: Connect gives each directory
    of `plugin.path` its own class loader, so Debezium's Jackson or protobuf never meet the worker's."""
    jars = [Path(p) for p in classpath("debezium").split(os.pathsep) if p]
    target = plugins_dir / DEBEZIUM_PLUGIN
    wanted = {jar.name: jar.stat().st_size for jar in jars}
    present = {jar.name: jar.stat().st_size for jar in target.glob("*.jar")} if target.is_dir() else {}
    if present != wanted:  # a changed pom leaves no stale jar behind
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for jar in jars:
            shutil.copy2(jar, target / jar.name)
    return target


def build_failing_plugin(plugins_dir: Path, connect_classpath: str) -> Path:
    """Compile the test connector whose start() throws into its own plugin directory (cached by mtime)."""
    target = plugins_dir / "always-failing" / "always-failing.jar"
    sources = sorted((FAILING_CONNECTOR / "src").rglob("*.java"))
    newest = max(f.stat().st_mtime for f in [*sources, *(FAILING_CONNECTOR / "resources").rglob("*")])
    if target.exists() and target.stat().st_mtime >= newest:
        return target
    classes = plugins_dir / "always-failing-classes"
    shutil.rmtree(classes, ignore_errors=True)
    classes.mkdir(parents=True)
    for cmd in (
        [
            "javac",
            "--release",
            "17",
            "-nowarn",
            "-cp",
            connect_classpath,
            "-d",
            str(classes),
            *map(str, sources),
        ],
        [
            "jar",
            "--create",
            "--file",
            str(target),
            "-C",
            str(classes),
            ".",
            "-C",
            str(FAILING_CONNECTOR / "resources"),
            ".",
        ],
    ):
        target.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if result.returncode != 0:
            raise KitError(f"building the failing test connector failed: {result.stderr[-2000:]}")
    shutil.rmtree(classes, ignore_errors=True)
    return target


class ConnectKit:
    """Start with `start()` (or as a context manager); `connect_url` and `data_dir` for the tests."""

    def __init__(self, data_dir: Path | str, *, workers: int = 1, startup_timeout: float = 240.0) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.workers = workers  # one Connect cluster (same group.id and topics), `workers` processes
        self.startup_timeout = startup_timeout
        self.ports: dict[str, int] = {}
        self.pids: dict[str, int] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}  # kept so they are reaped, not leaked

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def connect_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['connect']}"

    @property
    def worker_names(self) -> list[str]:
        return ["connect"] + [f"connect-{n}" for n in range(2, self.workers + 1)]

    @property
    def worker_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[w]}" for w in self.worker_names]

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    def load_state(self) -> bool:
        """Adopt a kit started earlier (by `start` in another process); False if none is running."""
        if not self.state_path.exists():
            return False
        state = json.loads(self.state_path.read_text())
        self.ports, self.pids = state["ports"], state["pids"]
        return all(pid_alive(p) for p in self.pids.values()) and http_ok(self.connect_url + "/health")

    def start(self) -> ConnectKit:
        require_tools()
        broker_cp, connect_cp = classpath("broker"), classpath("connect")
        for sub in ("logs", "secrets", "plugins", "kraft"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.data_dir / "not-a-directory").write_text("")  # see failing_task_config
        build_failing_plugin(self.data_dir / "plugins", connect_cp)
        install_debezium_plugin(self.data_dir / "plugins")
        self.ports = {
            "broker": free_port(),
            "controller": free_port(),
            **{w: free_port() for w in self.worker_names},
        }
        (self.data_dir / "log4j2.properties").write_text(LOG4J2)
        self._write_configs()
        log_opt = f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        started = time.monotonic()
        try:
            cluster_id = self._cluster_id()
            formatted = subprocess.run(
                [
                    "java",
                    *JVM_LIGHT,
                    "-Xmx256m",
                    log_opt,
                    "-cp",
                    broker_cp,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(self.data_dir / "server.properties"),
                    "--ignore-formatted",
                ],
                check=False,
                capture_output=True,
                timeout=120,
            )
            if formatted.returncode != 0:
                raise KitError(
                    f"kafka-storage format failed: {formatted.stdout[-2000:]!r} {formatted.stderr[-2000:]!r}"
                )
            self.pids["broker"] = self._spawn(
                "broker",
                [
                    "java",
                    *JVM_LIGHT,
                    "-Xms128m",
                    "-Xmx512m",
                    log_opt,
                    "-cp",
                    broker_cp,
                    "kafka.Kafka",
                    str(self.data_dir / "server.properties"),
                ],
            )
            self._wait("broker", lambda: _port_open(self.ports["broker"]))
            for worker, url in zip(self.worker_names, self.worker_urls, strict=True):
                self.pids[worker] = self._spawn(
                    worker,
                    [
                        "java",
                        *JVM_LIGHT,
                        "-Xms128m",
                        "-Xmx512m",
                        log_opt,
                        "-cp",
                        connect_cp,
                        "org.apache.kafka.connect.cli.ConnectDistributed",
                        str(self.data_dir / f"{worker}-distributed.properties"),
                    ],
                )
                self._wait(worker, lambda url=url: http_ok(url + "/health"))  # type: ignore[misc]
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self.state_path.write_text(json.dumps({"ports": self.ports, "pids": self.pids}))
        return self

    def stop(self) -> None:
        """Worker first, then the broker; SIGTERM, then SIGKILL after a grace period."""
        for name in sorted(self.pids, key=lambda n: n == "broker"):  # workers first, the broker last
            terminate(self.pids.pop(name), self._processes.pop(name, None))
        self.state_path.unlink(missing_ok=True)

    def stop_worker(self, name: str = "connect") -> None:
        """Terminate one Connect worker (SIGTERM, then SIGKILL); its port stays reserved in `ports`."""
        if name not in self.worker_names:
            raise KitError(f"no worker {name!r} (workers: {', '.join(self.worker_names)})")
        if name in self.pids:
            terminate(self.pids.pop(name), self._processes.pop(name, None))
        self._save_state()

    def start_worker(self, name: str = "connect", *, wait: bool = True) -> None:
        """Start a stopped worker again: same properties file and port, appending to its log. With `wait`,
        return once its /health answers 200, as `start()` does."""
        if name not in self.worker_names or name not in self.ports:
            raise KitError(f"no worker {name!r} in this kit (workers: {', '.join(self.worker_names)})")
        previous = self._processes.get(name)  # poll() reaps a crashed child (a zombie looks alive to kill 0)
        if previous is not None:
            running = previous.poll() is None
        else:
            running = name in self.pids and pid_alive(self.pids[name])
        if running:
            raise KitError(f"worker {name!r} is already running (pid {self.pids[name]})")
        self.pids[name] = self._spawn(name, self._worker_cmd(name))
        self._save_state()
        if wait:
            url = f"http://127.0.0.1:{self.ports[name]}"
            self._wait(name, lambda: http_ok(url + "/health"))

    def restart_worker(self, name: str = "connect", *, wait: bool = True) -> None:
        self.stop_worker(name)
        self.start_worker(name, wait=wait)

    def _worker_cmd(self, name: str) -> list[str]:
        """The command line `start()` runs for worker `name`."""
        return [
            "java",
            *JVM_LIGHT,
            "-Xms128m",
            "-Xmx512m",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            classpath("connect"),
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(self.data_dir / f"{name}-distributed.properties"),
        ]

    def _save_state(self) -> None:
        """Rewrite the state file (when `start()` wrote one) with the current pids."""
        if self.state_path.exists():
            self.state_path.write_text(json.dumps({"ports": self.ports, "pids": self.pids}))

    def __enter__(self) -> ConnectKit:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- internals -------------------------------------------------------------------------------
    def _cluster_id(self) -> str:
        """The id the data dir was formatted with (a restart must reuse it), else a new one."""
        meta = self.data_dir / "kraft" / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # StorageTool would read a leading '-' as an option (1 in 64)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        return cluster_id

    def _spawn(self, name: str, cmd: list[str]) -> int:
        self._processes[name] = spawn(cmd, log=self.data_dir / "logs" / f"{name}.log", cwd=self.data_dir)
        return self._processes[name].pid

    def _wait(self, name: str, ready: Callable[[], bool]) -> None:
        wait_ready(
            name,
            ready,
            alive=lambda: pid_alive(self.pids[name]),
            log=self.data_dir / "logs" / f"{name}.log",
            timeout=self.startup_timeout,
        )

    def _write_configs(self) -> None:
        b, c = self.ports["broker"], self.ports["controller"]
        server = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@127.0.0.1:{c}",
            "listeners": f"PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{b}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data_dir / "kraft",
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            # One broker: internal topics must have RF 1, or there is no group coordinator and Connect hangs.
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "log.retention.hours": 1,
        }
        secrets = self.data_dir / "secrets"
        worker = {
            "bootstrap.servers": f"127.0.0.1:{b}",
            "group.id": "kit-connect",
            "config.storage.topic": "kit-connect-configs",
            "offset.storage.topic": "kit-connect-offsets",
            "status.storage.topic": "kit-connect-status",
            "config.storage.replication.factor": 1,
            "offset.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.storage.partitions": 1,
            "status.storage.partitions": 1,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "rest.advertised.host.name": "127.0.0.1",
            "offset.flush.interval.ms": 1000,
            "scheduled.rebalance.max.delay.ms": 5000,
            "plugin.path": self.data_dir / "plugins",
            # Kafka's own connectors, the test connector and Debezium's jars (debezium-connector-postgres,
            # debezium-connect-plugins) all carry ServiceLoader manifests: skipping the reflective scan
            # saves ~2 s and ~250 MB. A third-party plugin without manifests would need hybrid_warn.
            "plugin.discovery": "service_load",
            # The names the reconciler's placeholders use: `${file:PATH:key}` (--properties-provider file)
            # and `${directory:PATH:KEY}` (--secret-provider directory). Both read only under the kit's
            # secrets dir, so a connector config cannot make the worker read any other file.
            "config.providers": "file,directory,env",
            "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
            "config.providers.directory.class": "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
            "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            "config.providers.file.param.allowed.paths": secrets,
            "config.providers.directory.param.allowed.paths": secrets,
            "config.providers.env.param.allowlist.pattern": "KIT_.*",
        }
        (self.data_dir / "server.properties").write_text(_properties(server))
        for name in self.worker_names:  # REST listeners differ; a follower forwards writes to the leader
            port = self.ports[name]
            rest = {"listeners": f"http://127.0.0.1:{port}", "rest.advertised.port": port}
            (self.data_dir / f"{name}-distributed.properties").write_text(_properties({**worker, **rest}))


def failing_connector_config(kit: ConnectKit) -> dict[str, str]:
    """A connector whose start() throws (tests/harness/failing-connector): connector state FAILED."""
    return {"connector.class": "connectreconciler.test.AlwaysFailingSourceConnector", "tasks.max": "1"}


def failing_task_config(kit: ConnectKit) -> dict[str, str]:
    """A sink whose task fails at start (its output file's directory cannot exist): task state FAILED."""
    return {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1",
        "topics": "kit-failing",
        "file": str(kit.data_dir / "not-a-directory" / "out.txt"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.connect_kit")
    parser.add_argument("command", choices=["start", "stop", "url", "classpath"])
    parser.add_argument("--data-dir", default=str(cache_dir() / "demo"))
    args = parser.parse_args(argv)
    kit = ConnectKit(args.data_dir)
    try:
        if args.command == "classpath":
            classpath("broker")
            classpath("connect")
            classpath("debezium")
            print(cache_dir())
        elif args.command == "start":
            if not kit.load_state():
                kit.stop()  # a stale state file: clear leftovers before starting afresh
                kit.start()
                print(
                    f"Kafka {KAFKA_VERSION} + Connect started in {kit.startup_seconds:.1f} s (logs in {kit.data_dir / 'logs'})",
                    file=sys.stderr,
                )
            print(kit.connect_url)
        elif args.command == "url":
            if not kit.load_state():
                raise KitError(f"no running kit in {kit.data_dir}: run start first")
            print(kit.connect_url)
        else:
            kit.load_state()
            kit.stop()
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
