"""Debezium's PostgreSQL connector end to end: the sample configmaps/cdc/debezium-postgres.yaml applied by
the CLI to the real worker (Debezium 3.6 from Maven Central in its plugin.path) reading a real PostgreSQL.

Rows inserted into the database arrive in Kafka (read back with a plain KafkaConsumer); adding a table to
table.include.list is one PUT; the database password, a Secret volume rendered with `--secret-provider
directory`, is resolved by the worker's DirectoryConfigProvider and shows up in no output at all.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.connect_kit import ConnectKit, classpath
from tests.harness.postgres_kit import PostgresKit
from tests.support import CliWorkspace, eventually

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "configmaps" / "cdc" / "debezium-postgres.yaml"
CONNECTOR = "cdc-postgres"  # the sample's name, slot and publication (connect_cdc)
SLOT = "connect_cdc"
WAIT = 120.0

# A KafkaConsumer run as a single-file Java program (java Consume.java, JDK 11+): the harness has the
# kafka-clients jar but no console consumer. It prints the first record value of TOPIC holding NEEDLE and
# exits 0, or exits 3 after TIMEOUT_MS. Topics are not auto-created by it: Connect creates them.
CONSUMER = """\
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

public class Consume {
    public static void main(String[] args) {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("group.id", "test-debezium-" + System.nanoTime());
        props.put("auto.offset.reset", "earliest");
        props.put("enable.auto.commit", "false");
        props.put("allow.auto.create.topics", "false");
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        long deadline = System.currentTimeMillis() + Long.parseLong(args[3]);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(args[1]));
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    if (record.value() != null && record.value().contains(args[2])) {
                        System.out.println(record.value());
                        return;
                    }
                }
            }
        }
        System.exit(3);
    }
}
"""


class Cdc(CliWorkspace):
    """The sample's ConfigMap and its inputs: env for the database's address, a properties file for the
    topic prefix, and a Secret volume named `postgres` holding the password. The volume lives under the
    kit's secrets dir because the worker's DirectoryConfigProvider may read nothing else (allowed.paths)."""

    def __init__(self, kit: ConnectKit, pg: PostgresKit, tmp: Path) -> None:
        self.prefix = f"dbz{uuid.uuid4().hex[:6]}"
        self.kit, self.pg, self.tmp = kit, pg, tmp
        self.audit = tmp / "audit.jsonl"
        self.captured: list[str] = []  # consumer output, psql output: searched for the password too
        super().__init__(
            Path(kit.data_dir) / "secrets" / self.prefix,
            url=kit.connect_url,
            properties=f"topic.prefix={self.prefix}\n",
            secret_volume="postgres",
            secret=pg.password,
            environ={"CDC_PG_HOST": "127.0.0.1", "CDC_PG_PORT": str(pg.port)},
        )
        (tmp / "Consume.java").write_text(CONSUMER)

    def sample(self, tables: str = "public.customers") -> None:
        text = SAMPLE.read_text()
        default = '"table.include.list": "public.customers"'
        assert text.count(default) == 1, "the sample's table.include.list moved: update this test"
        self.write("debezium-postgres", text.replace(default, f'"table.include.list": "{tables}"'))

    def apply(self) -> tuple[int, str]:
        self.requests.clear()
        code, out, err = self.cli("apply", "--secret-provider", "directory", "--audit-file", str(self.audit))
        return code, out + err

    def topic(self, table: str) -> str:
        return f"{self.prefix}-cdc.public.{table}"

    def sql(self, statements: str) -> str:
        out = self.pg.sql(statements)
        self.captured.append(out)
        return out

    def consume(self, topic: str, needle: str) -> dict[str, Any]:
        """The change event on `topic` whose value holds `needle` (bounded by WAIT)."""
        broker = f"127.0.0.1:{self.kit.ports['broker']}"
        cmd = ["java", "-cp", classpath("broker"), str(self.tmp / "Consume.java")]
        cmd += [broker, topic, needle, str(int(WAIT * 1000))]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT + 60, check=False)
        self.captured += [result.stdout, result.stderr]
        assert result.returncode == 0, f"no event holding {needle!r} on {topic}: {result.stderr[-2000:]}"
        event: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return event


def connector_and_tasks_running(http: httpx.Client) -> bool:
    response = http.get(f"/connectors/{CONNECTOR}/status")
    if response.status_code != 200:
        return False
    status = response.json()
    states = [status["connector"]["state"]] + [task["state"] for task in status["tasks"]]
    return len(states) == 2 and set(states) == {"RUNNING"}


@pytest.fixture
def cdc(connect_kit: ConnectKit, postgres: PostgresKit, tmp_path: Path) -> Iterator[Cdc]:
    ws = Cdc(connect_kit, postgres, tmp_path)
    ws.sql(
        "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);"
        "CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL);"
    )
    yield ws
    # Leave the worker and the database as they were: no connector, no slot holding WAL, no tables.
    with httpx.Client(base_url=connect_kit.connect_url, timeout=30) as http:
        http.delete(f"/connectors/{CONNECTOR}")
    deadline = time.monotonic() + WAIT
    while True:  # the slot stays active until the worker has stopped the task
        active = postgres.sql(f"SELECT active FROM pg_replication_slots WHERE slot_name = '{SLOT}'")
        if active != "t":
            break
        assert time.monotonic() < deadline, (
            f"replication slot {SLOT} still active {WAIT:.0f} s after the delete"
        )
        time.sleep(0.5)
    if active:
        postgres.sql(f"SELECT pg_drop_replication_slot('{SLOT}')")
    postgres.sql(f"DROP PUBLICATION IF EXISTS {SLOT}; DROP TABLE IF EXISTS customers, orders;")


def test_debezium_cdc_end_to_end(
    cdc: Cdc, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    password = cdc.pg.password
    http = httpx.Client(base_url=cdc.url, timeout=30)

    # a) The sample creates the connector; connector and task reach RUNNING.
    cdc.sample()
    code, out = cdc.apply()
    assert code == 0, out
    assert cdc.writes() == ["POST /connectors"]
    eventually(
        lambda: connector_and_tasks_running(http),
        what=f"{CONNECTOR} and its task RUNNING",
        timeout=WAIT,
        detail=lambda: f": {http.get(f'/connectors/{CONNECTOR}/status').text}",
    )
    code, out, err = cdc.cli("status", "--wait", str(int(WAIT)))
    assert code == 0, out + err
    live = http.get(f"/connectors/{CONNECTOR}/config").json()
    assert live["database.password"] == f"${{directory:{cdc.secret}:password}}"
    assert live["table.include.list"] == "public.customers"

    # b) A row inserted into customers arrives on <prefix>.<schema>.<table>.
    cdc.sql("INSERT INTO customers (name) VALUES ('ada-lovelace')")
    event = cdc.consume(cdc.topic("customers"), "ada-lovelace")
    # "c" when streamed; "r" should the row have been inserted before the initial snapshot ran.
    assert event["op"] in ("c", "r"), event
    assert event["after"]["name"] == "ada-lovelace"
    assert event["source"]["table"] == "customers" and event["source"]["schema"] == "public"

    # c) Adding orders to table.include.list is exactly one PUT, and a second apply writes nothing.
    cdc.sample("public.customers,public.orders")
    code, out = cdc.apply()
    assert code == 0, out
    assert cdc.writes() == [f"PUT /connectors/{CONNECTOR}/config"]
    code, out = cdc.apply()
    assert code == 0 and cdc.writes() == [], (out, cdc.writes())
    # Connect restarts the task with the new list, and the task then alters its publication ("filtered"):
    # a row committed before that ALTER is not published to the slot, so wait for it.
    eventually(
        lambda: (
            sorted(cdc.sql(f"SELECT tablename FROM pg_publication_tables WHERE pubname = '{SLOT}'").split())
            == ["customers", "orders"]
        ),
        what=f"publication {SLOT} to include orders",
        timeout=WAIT,
    )
    eventually(lambda: connector_and_tasks_running(http), what="the restarted task RUNNING", timeout=WAIT)
    cdc.sql("INSERT INTO orders (item) VALUES ('difference-engine')")
    event = cdc.consume(cdc.topic("orders"), "difference-engine")
    assert event["op"] == "c" and event["after"]["item"] == "difference-engine", event

    # d) The password is nowhere: not in Connect's REST answers, the CLI's output, the audit file, the
    # worker's or PostgreSQL's logs, nor anything else this test captured.
    captured = {
        "GET config": http.get(f"/connectors/{CONNECTOR}/config").text,
        "GET connectors?expand": http.get("/connectors?expand=info&expand=status").text,
        "GET tasks": http.get(f"/connectors/{CONNECTOR}/tasks").text,
        "audit file": cdc.audit.read_text(),
        "pytest capture": "".join(capsys.readouterr()),
        "log records": caplog.text,
    }
    assert '"database.password"' in cdc.audit.read_text()  # the audit did record the change
    captured |= {f"CLI output {i}": text for i, text in enumerate(cdc.outputs)}
    captured |= {f"captured {i}": text for i, text in enumerate(cdc.captured)}
    for log in [*(Path(cdc.kit.data_dir) / "logs").glob("*.log"), cdc.pg.log]:
        captured[str(log)] = log.read_text(errors="replace")
    leaks = [where for where, text in captured.items() if password in text]
    assert leaks == [], f"the database password appears in: {leaks}"
    http.close()
