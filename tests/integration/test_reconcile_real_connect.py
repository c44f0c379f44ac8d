"""The CLI against a real Kafka Connect worker (Kafka 4.1 from Maven Central jars, see tests/harness).

Each test declares connectors with its own name prefix, so tests share one worker without interfering.
Write requests are asserted on the HTTP requests the CLI really sent (recorded by an httpx event hook).
"""

from __future__ import annotations

import io
import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.entrypoints.main import run
from tests.harness.connect_kit import ConnectKit, failing_connector_config, failing_task_config
from tests.support import CliWorkspace, configmap_yaml

SECRET_ENV = "itest-Env-Secret-9f3a"
SECRET_FILE = "itest-File-Secret-4c1d"
SECRET_PROP = "itest-Prop-Secret-77e2"


class Workspace(CliWorkspace):
    """ConfigMap files + template inputs for one test, with its own connector name prefix."""

    def __init__(self, root: Path, connect_url: str, data_dir: Path) -> None:
        self.prefix = f"it{uuid.uuid4().hex[:6]}"
        self.data_dir = data_dir
        super().__init__(
            root,
            url=connect_url,
            properties=f"topic.prefix={self.prefix}\nsink.password={SECRET_PROP}\n",
            secret_volume="db",
            secret=SECRET_FILE,
            environ={"DB_PASSWORD": SECRET_ENV, "STAGE": "it", "DATA_DIR": str(data_dir)},
        )

    def name(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    def source(
        self, short: str, *, enabled: str | None = None, state: str | None = None, **extra: Any
    ) -> None:
        config = {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1",
            "file": str(self.data_dir / f"{self.name(short)}.txt"),
            "topic": f"{self.name(short)}-topic",
            **extra,
        }
        doc: dict[str, Any] = {"name": self.name(short), "config": config}
        if state:
            doc["state"] = state
        self.write(
            short,
            configmap_yaml(
                f"cm-{self.name(short)}", {f"{short}.json": json.dumps(doc, indent=2)}, enabled=enabled
            ),
        )

    def reset(self) -> None:
        self.requests.clear()

    def wait_status(self, seconds: float = 120) -> tuple[int, str]:
        code, out, err = self.cli("status", "--wait", str(seconds))
        return code, out + err


@pytest.fixture
def ws(tmp_path: Path, connect_url: str, connect_kit: Any) -> Iterator[Workspace]:
    w = Workspace(tmp_path, connect_url, Path(connect_kit.data_dir))
    yield w
    # Leave the shared worker clean: delete whatever this test created.
    with httpx.Client(base_url=connect_url, timeout=30) as http:
        for name in http.get("/connectors").json():
            if name.startswith(w.prefix):
                http.delete(f"/connectors/{name}")


def live_state(url: str, name: str) -> dict[str, Any]:
    """The connector's status, waiting (bounded) while Connect has none yet, as right after a create."""
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30) as http:
        while True:
            response = http.get(f"/connectors/{name}/status")
            if response.status_code == 200 or time.monotonic() > deadline:
                return dict(response.json())
            time.sleep(0.5)


def row(table: str, connector: str) -> list[str]:
    """One connector's row of the `status` table, split into cells (none of ours contains a space)."""
    return next(line.split() for line in table.splitlines() if line.split()[:1] == [connector])


def test_plan_apply_converge_and_stay_idle(ws: Workspace) -> None:
    ws.source("a")
    ws.source("b")
    code, out, _ = ws.cli("plan")
    assert code == 2, out
    assert f"+ create {ws.name('a')}" in out and f"+ create {ws.name('b')}" in out
    assert ws.writes() == []  # a dry run sends no write request of any kind

    code, out, err = ws.cli("apply")
    assert code == 0, out + err
    assert ws.writes() == ["POST /connectors", "POST /connectors"]
    code, status = ws.wait_status()
    assert code == 0, status
    assert row(status, ws.name("a"))[2:6] == ["running", "RUNNING", "1", "RUNNING"]

    ws.reset()
    code, out, _ = ws.cli("plan")
    assert code == 0, out
    code, out, _ = ws.cli("apply")
    assert code == 0 and ws.writes() == [], (out, ws.writes())

    # One value in one file -> exactly one PUT, for that connector only.
    ws.source("b", topic=f"{ws.name('b')}-topic-v2")
    ws.reset()
    code, out, _ = ws.cli("apply")
    assert code == 0, out
    assert ws.writes() == [f"PUT /connectors/{ws.name('b')}/config"]
    with httpx.Client(base_url=ws.url, timeout=30) as http:
        assert http.get(f"/connectors/{ws.name('b')}/config").json()["topic"] == f"{ws.name('b')}-topic-v2"

    # enabled: "false" deletes it.
    ws.source("b", enabled="false")
    ws.reset()
    assert ws.cli("apply")[0] == 0
    assert ws.writes() == [f"DELETE /connectors/{ws.name('b')}"]
    with httpx.Client(base_url=ws.url, timeout=30) as http:
        assert http.get(f"/connectors/{ws.name('b')}/config").status_code == 404
    ws.reset()
    assert ws.cli("apply")[0] == 0 and ws.writes() == []


def test_paused_and_stopped(ws: Workspace) -> None:
    ws.source("p")
    ws.source("s")
    ws.source("born-stopped", state="stopped")
    assert ws.cli("apply")[0] == 0
    assert ws.wait_status()[0] == 0
    assert live_state(ws.url, ws.name("born-stopped"))["connector"]["state"] == "STOPPED"

    ws.source("p", state="paused")
    ws.source("s", state="stopped")
    ws.reset()
    assert ws.cli("apply")[0] == 0
    assert ws.writes() == [f"PUT /connectors/{ws.name('p')}/pause", f"PUT /connectors/{ws.name('s')}/stop"]
    code, status = ws.wait_status()
    assert code == 0, status
    assert live_state(ws.url, ws.name("p"))["connector"]["state"] == "PAUSED"
    assert live_state(ws.url, ws.name("s"))["connector"]["state"] == "STOPPED"
    ws.reset()
    assert ws.cli("apply")[0] == 0 and ws.writes() == []

    ws.source("p", state="running")
    assert ws.cli("apply")[0] == 0
    assert ws.wait_status()[0] == 0
    assert live_state(ws.url, ws.name("p"))["connector"]["state"] == "RUNNING"


def test_connect_operator_style_applies_once_then_stays_in_sync(ws: Workspace) -> None:
    # Exactly the connect-operator idiom: jq program, env.X, $VARS, a number, name repeated in config.
    program = textwrap.dedent(f"""\
        {{
          "name": "{ws.name("legacy")}",
          "config": {{
            "name": "{ws.name("legacy")}",
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": 1,
            "file": (env.DATA_DIR + "/legacy-" + env.STAGE + ".txt"),
            "topic": ($TOPIC_PREFIX + "-legacy")
          }}
        }}""")
    ws.write("legacy", configmap_yaml(f"cm-{ws.name('legacy')}", {"legacy.json": program}, enabled="true"))
    assert ws.cli("apply")[0] == 0
    assert ws.writes() == ["POST /connectors"]
    assert ws.wait_status()[0] == 0
    for _ in range(3):
        ws.reset()
        assert ws.cli("plan")[0] == 0
        assert ws.cli("apply")[0] == 0
        assert ws.writes() == []


def test_secrets_never_reach_any_output(
    ws: Workspace, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    def program(extra: str = "") -> str:
        return textwrap.dedent(f"""\
            {{"name": "{ws.name("sec")}", "config": {{
              "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
              "file": (env.DATA_DIR + "/sec.txt"), "topic": "{ws.name("sec")}",
              "connection.password": env.DB_PASSWORD,
              "sink.password": $SINK_PASSWORD,
              "vault.token": $secrets.db.password,
              "connection.url": ("jdbc:x://h/db?password=" + env.DB_PASSWORD){extra}
            }}}}""")

    ws.write("sec", configmap_yaml(f"cm-{ws.name('sec')}", {"sec.json": program()}))
    for argv in (
        ("render",),
        ("render", "--output", "json"),
        ("plan",),
        ("plan", "--output", "json"),
        ("plan", "--validate"),
        ("apply", "--log-level", "debug"),
        ("status",),
    ):
        ws.cli(*argv)
    # A change Connect rejects with a message that quotes the (secret) value it did not like.
    ws.write(
        "sec", configmap_yaml(f"cm-{ws.name('sec')}", {"sec.json": program(', "tasks.max": env.DB_PASSWORD')})
    )
    code, out, _ = ws.cli("apply", "--log-level", "debug", "--output", "json")
    assert code == 1 and "tasks.max" in out
    ws.cli("plan", "--log-level", "debug")
    captured = capsys.readouterr()
    everything = "\n".join([*ws.outputs, captured.out, captured.err, caplog.text])
    assert "<secret sha256:" in everything
    with httpx.Client(base_url=ws.url, timeout=30) as http:  # the worker really got the secret
        assert http.get(f"/connectors/{ws.name('sec')}/config").json()["connection.password"] == SECRET_ENV
    for secret in (SECRET_ENV, SECRET_FILE, SECRET_PROP):
        assert secret not in everything


def test_bad_input_is_named_and_blocks_nothing_else(ws: Workspace) -> None:
    ws.source("keep")
    ws.source("victim")
    assert ws.cli("apply")[0] == 0
    assert ws.wait_status()[0] == 0
    before = live_state(ws.url, ws.name("victim"))
    ws.write(
        "victim",
        configmap_yaml(
            f"cm-{ws.name('victim')}",
            {
                "v.json": '{"name": "' + ws.name("victim") + '", "config": {"topic": $UNDEFINED_VAR}}',
            },
            enabled="false",
        ),
    )
    ws.write("broken-yaml", "kind: ConfigMap\nmetadata:\n  name: broken\n  labels: {destination: connect\n")
    ws.write(
        "bad-jq",
        configmap_yaml(
            f"cm-{ws.name('bad')}",
            {
                "jq.json": "{oops",
                "noname.json": '{"config": {}}',
                "noconfig.json": '{"name": "x"}',
                "nested.json": '{"name": "' + ws.name("nested") + '", "config": {"a": {"b": 1}}}',
            },
        ),
    )
    ws.source("new")
    ws.reset()
    code, out, _ = ws.cli("apply")
    assert code == 1
    assert ws.writes() == ["POST /connectors"]  # only the new, valid connector
    errors = [line for line in out.splitlines() if line.startswith("! error")]
    assert len(errors) == 6, errors
    assert any(
        f"ConfigMap default/cm-{ws.name('victim')} key v.json: jq compile error: $UNDEFINED_VAR is not defined"
        in e
        for e in errors
    )
    assert any("ConfigMap broken in " in e and "invalid YAML" in e for e in errors)
    assert any(f'cm-{ws.name("bad")} key nested.json: config key "a" is an object' in e for e in errors)
    assert live_state(ws.url, ws.name("victim"))["connector"]["state"] == before["connector"]["state"]


def test_failed_connector_and_failed_task_are_reported(ws: Workspace, connect_kit: Any) -> None:
    connector = {"name": ws.name("fails"), "config": failing_connector_config(connect_kit)}
    task = {"name": ws.name("task-fails"), "config": failing_task_config(connect_kit)}
    ws.write(
        "fails",
        configmap_yaml(
            f"cm-{ws.name('fails')}", {"c.json": json.dumps(connector), "t.json": json.dumps(task)}
        ),
    )
    assert ws.cli("apply")[0] == 0
    code, status = ws.wait_status(seconds=20)
    assert code == 1, status
    assert row(status, ws.name("fails"))[3] == "FAILED"
    assert row(status, ws.name("task-fails"))[3:6] == ["RUNNING", "1", "FAILED"]
    assert f"not in the desired state: {ws.name('fails')}, {ws.name('task-fails')}" in status
    # A FAILED connector whose config is unchanged is not rewritten on the next run.
    ws.reset()
    assert ws.cli("apply")[0] == 0 and ws.writes() == []


def test_samples_apply_to_the_real_worker(tmp_path: Path, connect_url: str, connect_kit: Any) -> None:
    root = Path(__file__).resolve().parents[2]
    data = Path(connect_kit.data_dir)
    (data / "input.txt").write_text("one\ntwo\n")
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "apply",
        # The top-level samples are the FileStream demo; subdirectories hold samples for other plugins.
        *sorted(str(p) for p in (root / "configmaps").glob("*.yaml")),
        "--properties-dir",
        str(root / "configmaps/inputs/properties"),
        "--connect-url",
        connect_url,
    ]
    env = {"DEMO_DATA_DIR": str(data)}
    try:
        assert run(argv, environ=env, stdout=out, stderr=err) == 0, out.getvalue() + err.getvalue()
        status_argv = ["status", *argv[1:], "--wait", "120"]
        assert run(status_argv, environ=env, stdout=out, stderr=err) == 0, out.getvalue() + err.getvalue()
        output = data / "output.txt"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (output.exists() and "two" in output.read_text()):
            time.sleep(1)
        assert "two" in output.read_text()  # records flowed: file -> source -> Kafka -> sink -> file
    finally:
        with httpx.Client(base_url=connect_url, timeout=30) as http:
            for name in ("demo-file-source", "demo-file-sink", "demo-archive-sink"):
                http.delete(f"/connectors/{name}")


def test_validate_shows_connect_field_errors(ws: Workspace) -> None:
    ws.source("invalid", **{"tasks.max": "many"})
    code, out, _ = ws.cli("plan", "--validate")
    assert code == 1
    assert (
        f"connector {ws.name('invalid')}: invalid tasks.max: Invalid value many for configuration tasks.max"
        in out
    )
    assert ws.writes() == ["PUT /connector-plugins/FileStreamSourceConnector/config/validate"]


def test_two_workers_writes_through_either_worker_converge_without_duplicates(tmp_path: Path) -> None:
    """A 2-worker cluster of its own: writes sent to a follower are forwarded, reads right after creates and
    deletes race rebalances (409s, entries missing from ?expand) — and still no duplicate or missed write."""
    kit = ConnectKit(tmp_path / "kit", workers=2).start()
    try:
        first, second = kit.worker_urls
        ws = Workspace(tmp_path / "ws", second, kit.data_dir)
        for n in range(6):
            ws.source(f"c{n}")
        code, out, _ = ws.cli("apply")
        assert code == 0, out
        assert ws.writes() == ["POST /connectors"] * 6
        for url in (first, second, first):  # immediately, while the workers rebalance
            ws.reset()
            code, out, _ = ws.cli("apply", "--connect-url", url)
            assert code == 0 and ws.writes() == [], (url, out, ws.writes())
        ws.source("c0", topic="changed")
        ws.source("c5", enabled="false")
        ws.reset()
        code, out, _ = ws.cli("apply", "--connect-url", first)
        assert code == 0, out
        assert ws.writes() == [
            f"PUT /connectors/{ws.name('c0')}/config",
            f"DELETE /connectors/{ws.name('c5')}",
        ]
        ws.reset()
        code, out, _ = ws.cli("plan", "--connect-url", second)
        assert code == 0, out
        assert ws.wait_status(seconds=120)[0] == 0
    finally:
        kit.stop()
