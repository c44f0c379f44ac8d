"""The CLI end to end against the in-memory Connect (the same flows run against a real worker in
tests/integration). Every captured stream is searched for the known secret values."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.fake_connect import FakeConnect
from tests.support import CliWorkspace, configmap_yaml

SECRET_ENV = "env-Secret-Value-111"
SECRET_FILE = "file-Secret-Value-222"
SECRET_PROP = "prop-Secret-Value-333"
SECRETS = (SECRET_ENV, SECRET_FILE, SECRET_PROP)


def program(name: str, **config: object) -> str:
    body = {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": 1,
        **config,
    }
    return json.dumps({"name": name, "config": body}, indent=2)


class World(CliWorkspace):
    def __init__(self, tmp: Path) -> None:
        self.fake = FakeConnect()
        super().__init__(
            tmp,
            url="http://connect.test",
            properties=f"topic.prefix=demo\ndb.password={SECRET_PROP}\n",
            secret_volume="db-creds",
            secret=SECRET_FILE,
            environ={"DB_PASSWORD": SECRET_ENV, "STAGE": "dev"},
            transport=httpx.MockTransport(self.fake.handle),
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.write(
        "a.yaml",
        configmap_yaml("cm-a", {"a.json": program("src-a", topic="$TOPIC_PREFIX-a", file="/tmp/a.txt")}),
    )
    w.write("b.yaml", configmap_yaml("cm-b", {"b.json": program("src-b", topic="b", file="/tmp/b.txt")}))
    # A jq program (not JSON): $VARS, env.X, secrets from env, properties and a mounted Secret.
    w.write(
        "c.yaml",
        configmap_yaml(
            "cm-c",
            {
                "c.json": textwrap.dedent("""\
        {"name": "src-c", "config": {"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
         "topic": ($TOPIC_PREFIX + "-" + env.STAGE), "file": "/tmp/c.txt", "tasks.max": 1,
         "connection.password": env.DB_PASSWORD, "other.password": $DB_PASSWORD, "vault.pw": $secrets["db-creds"].password}}
        """)
            },
        ),
    )
    return w


def test_plan_apply_idempotent_update_delete(world: World) -> None:
    code, out, _ = world.cli("plan")
    assert code == 2
    assert "+ create src-a" in out and "+ create src-c" in out and "Plan: 3 to create" in out
    assert world.fake.writes() == []

    code, out, err = world.cli("apply")
    assert code == 0, out + err
    assert sorted(world.fake.writes()) == ["POST /connectors"] * 3
    assert world.fake.connectors["src-c"]["config"]["topic"] == "demo-dev"

    world.fake.requests.clear()
    assert world.cli("plan")[0] == 0
    assert world.cli("apply")[0] == 0
    assert world.fake.writes() == []

    world.write("b.yaml", configmap_yaml("cm-b", {"b.json": program("src-b", topic="b2", file="/tmp/b.txt")}))
    code, out, _ = world.cli("plan")
    assert code == 2 and '~ topic: "b" -> "b2"' in out
    assert world.cli("apply")[0] == 0
    assert world.fake.writes() == ["PUT /connectors/src-b/config"]

    world.fake.requests.clear()
    world.write(
        "b.yaml",
        configmap_yaml("cm-b", {"b.json": program("src-b", topic="b2", file="/tmp/b.txt")}, enabled="false"),
    )
    assert world.cli("apply")[0] == 0
    assert world.fake.writes() == ["DELETE /connectors/src-b"]
    assert "src-b" not in world.fake.connectors


def test_states_paused_and_stopped(world: World) -> None:
    world.cli("apply")
    world.fake.requests.clear()
    world.write(
        "a.yaml",
        configmap_yaml(
            "cm-a",
            {
                "a.json": json.dumps(
                    {
                        "name": "src-a",
                        "state": "paused",
                        "config": {
                            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                            "tasks.max": 1,
                            "topic": "$TOPIC_PREFIX-a",
                            "file": "/tmp/a.txt",
                        },
                    }
                )
            },
        ),
    )
    world.write(
        "b.yaml",
        configmap_yaml(
            "cm-b",
            {
                "b.json": json.dumps(
                    {
                        "name": "src-b",
                        "state": "stopped",
                        "config": {
                            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                            "tasks.max": 1,
                            "topic": "b",
                            "file": "/tmp/b.txt",
                        },
                    }
                )
            },
        ),
    )
    assert world.cli("apply")[0] == 0
    assert sorted(world.fake.writes()) == ["PUT /connectors/src-a/pause", "PUT /connectors/src-b/stop"]
    assert (
        world.fake.connectors["src-a"]["state"] == "PAUSED"
        and world.fake.connectors["src-b"]["state"] == "STOPPED"
    )


def test_bad_inputs_are_named_and_do_not_block_the_others(world: World) -> None:
    world.cli("apply")
    world.fake.requests.clear()
    # Every kind of bad input, each on a connector that already exists or a new one:
    world.write(
        "a.yaml", configmap_yaml("cm-a", {"a.json": '{"name": "src-a", "config": {"topic": $NOT_DEFINED}}'})
    )
    world.write(
        "b.yaml",
        configmap_yaml(
            "cm-b", {"b.json": '{"name": "src-b", "config": {"x": {"nested": 1}}}'}, enabled="false"
        ),
    )
    world.write(
        "d.yaml", "kind: ConfigMap\nmetadata:\n  name: cm-d\n  labels: {destination: connect\ndata: {}\n"
    )
    world.write(
        "e.yaml",
        configmap_yaml(
            "cm-e", {"e.json": '{"config": {}}', "f.json": '{"name": "new-f"}', "g.json": "{oops"}
        ),
    )
    world.write("h.yaml", configmap_yaml("cm-h", {"h.json": program("new-h", topic="h", file="/tmp/h.txt")}))
    code, out, _ = world.cli("apply")
    assert code == 1
    assert world.fake.writes() == ["POST /connectors"]  # only new-h; src-a and src-b untouched
    assert "new-h" in world.fake.connectors and "src-b" in world.fake.connectors
    lines = [line for line in out.splitlines() if line.startswith("! error")]
    expected = [
        "ConfigMap default/cm-a key a.json: jq compile error: $NOT_DEFINED is not defined",
        'ConfigMap default/cm-b key b.json: config key "x" is an object',
        "ConfigMap cm-d in ",
        'ConfigMap default/cm-e key e.json: the output has no "name"',
        'ConfigMap default/cm-e key f.json: the output has no "config" object',
        "ConfigMap default/cm-e key g.json: jq compile error",
    ]
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)
    assert len(lines) == len(expected)


def test_outputs_never_contain_secrets(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.cli("render")
    world.cli("render", "--output", "json")
    world.cli("plan")
    world.cli("plan", "--output", "json")
    world.cli("apply", "--log-level", "debug")
    world.write(
        "c.yaml",
        configmap_yaml(
            "cm-c",
            {
                "c.json": '{"name": "src-c", "config": {"connection.password": (env.DB_PASSWORD + "x"), "x": error($secrets["db-creds"].password)}}'
            },
        ),
    )
    world.cli("plan", "--log-level", "debug")
    world.fake.fail(
        "PUT",
        "/connectors/src-a/config",
        400,
        {"error_code": 400, "message": f"Invalid value {SECRET_ENV} for password"},
    )
    world.write(
        "a.yaml",
        configmap_yaml(
            "cm-a", {"a.json": program("src-a", topic="changed", file="/tmp/a.txt", password=SECRET_ENV)}
        ),
    )
    code, out, _ = world.cli("apply", "--log-level", "debug")
    assert code == 1 and "Invalid value <secret sha256:" in out
    world.cli("status")
    captured = capsys.readouterr()
    everything = "\n".join([*world.outputs, captured.out, captured.err])
    assert "<secret sha256:" in everything  # masking happened, so the search below is meaningful
    for secret in SECRETS:
        assert secret not in everything


def test_render_json_masks_but_config_in_connect_is_real(world: World) -> None:
    code, out, _ = world.cli("render", "--output", "json")
    assert code == 0
    docs = {d["name"]: d for d in json.loads(out)}
    assert docs["src-c"]["config"]["connection.password"].startswith("<secret sha256:")
    assert docs["src-c"]["config"]["topic"] == "demo-dev"
    world.cli("apply")
    assert world.fake.connectors["src-c"]["config"]["vault.pw"] == SECRET_FILE


def test_plan_json_and_exit_codes(world: World) -> None:
    code, out, _ = world.cli("plan", "--output", "json")
    assert code == 2
    doc = json.loads(out)
    assert doc["dry_run"] is True and doc["summary"]["create"] == 3
    assert {c["connector"]: c["actions"] for c in doc["connectors"]}["src-a"] == ["create"]


def test_flags_from_environment(world: World) -> None:
    code, out, _ = world.cli(
        "plan", "--connect-url", "http://connect.test", env={"CONNECT_RECONCILER_OUTPUT": "json"}
    )
    assert code == 2 and json.loads(out)["summary"]["create"] == 3


def test_flags_from_environment_cover_plan_and_status_options(world: World) -> None:
    world.write("b.yaml", configmap_yaml("cm-b", {"b.json": program("src-b", bad="1")}))
    code, out, _ = world.cli("plan", env={"CONNECT_RECONCILER_VALIDATE": "true"})
    assert code == 1 and "invalid bad: bad is not allowed" in out
    with pytest.raises(SystemExit) as bad:  # argparse rejects a bad env value like a bad flag
        world.cli("status", env={"CONNECT_RECONCILER_WAIT": "soon"})
    assert bad.value.code == 2


def test_a_malformed_connect_url_is_one_error_that_does_not_echo_it(world: World) -> None:
    code, out, err = world.cli("plan", "--connect-url", "http://admin:url-Secret-42@connect:notaport")
    assert code == 1 and "--connect-url (CONNECT_RECONCILER_CONNECT_URL) is not a valid URL" in err
    assert "url-Secret-42" not in out + err


def test_connect_down_is_an_error_naming_the_cluster(world: World) -> None:
    world.fake.fail("GET", "/", 503, "starting", times=50)
    code, out, _ = world.cli("plan", "--retry-seconds", "0.5")
    assert code == 1 and "cannot read the state of cluster default" in out


def test_validate_shows_field_errors(world: World) -> None:
    world.write("b.yaml", configmap_yaml("cm-b", {"b.json": program("src-b", bad="1")}))
    code, out, _ = world.cli("plan", "--validate")
    assert code == 1 and "connector src-b: invalid bad: bad is not allowed" in out


def test_status_lists_declared_connectors(world: World) -> None:
    world.cli("apply")
    code, out, _ = world.cli("status")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["CONNECTOR", "CLUSTER", "DESIRED", "LIVE", "TASKS", "DRIFT", "LAST", "ACTION", "RESTARTS", "RECREATED", "ERROR"]
    assert rows[0].split() == ["src-a", "default", "running", "RUNNING", "1", "RUNNING", "no", "-", "0", "0", "-"]
    world.fake.connectors["src-a"]["config"]["topic"] = "edited-by-hand"
    world.fake.fail_task("src-c")
    code, out, _ = world.cli("status", "--output", "json")
    by_name = {r["connector"]: r for r in json.loads(out)}
    assert code == 1 and by_name["src-a"]["drift"] is True and by_name["src-c"]["tasks"] == ["FAILED"]
    assert by_name["src-a"]["ok"] and not by_name["src-c"]["ok"]


def test_expand_omission_does_not_cause_a_duplicate_create(world: World) -> None:
    world.cli("apply")
    world.fake.requests.clear()
    world.fake.no_status.add("src-a")  # e.g. right after a create: expand drops it
    assert world.cli("plan")[0] == 0
    assert world.fake.writes() == []


def test_color_only_when_asked_or_tty(world: World) -> None:
    _, plain, _ = world.cli("plan")
    _, colored, _ = world.cli("plan", "--color", "always")
    assert "\x1b[" not in plain and "\x1b[32m+ create" in colored
