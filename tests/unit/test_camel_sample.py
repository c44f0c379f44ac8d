"""The Camel sample (configmaps/camel/aws-s3-sink.yaml). Camel Kafka Connector's jars are not served by the
registry this project can reach, so no worker here can run it: `render` and `plan`/`apply` are tested
against the in-memory Connect, with its AWS keys as values (masked) and as directory placeholders."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest

from reconciler.entrypoints.main import run
from tests.fake_connect import FakeConnect

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "configmaps" / "camel" / "aws-s3-sink.yaml"
ACCESS, SECRET = "AKIAFAKEACCESS0001", "fake-Secret-Key-For-Camel-0042"
CLASS = "org.apache.camel.kafkaconnector.awss3sink.CamelAwss3sinkSinkConnector"


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    path = tmp_path / "aws-credentials"
    path.mkdir()
    (path / "access-key").write_text(ACCESS)
    (path / "secret-key").write_text(SECRET)
    return path


def cli(fake: FakeConnect, creds: Path, *argv: str, outputs: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    command, *rest = argv
    args = [command, str(SAMPLE), "--properties-dir", str(ROOT / "configmaps/inputs/properties")]
    args += ["--secret-dir", str(creds), *rest]
    if command != "render":
        args += ["--connect-url", "http://connect.test"]
    code = run(
        args,
        environ={"S3_BUCKET": "archive-bucket"},
        stdout=out,
        stderr=err,
        transport=httpx.MockTransport(fake.handle),
    )
    outputs += [out.getvalue(), err.getvalue()]
    return code, out.getvalue()


def test_render_gives_the_camel_config_with_its_keys_masked(creds: Path) -> None:
    outputs: list[str] = []
    code, out = cli(FakeConnect(), creds, "render", "--output", "json", outputs=outputs)
    assert code == 0, outputs
    [connector] = json.loads(out)
    config = connector["config"]
    assert connector["name"] == "camel-s3-archive" and config["connector.class"] == CLASS
    assert config["topics"] == "demo-lines" and config["tasks.max"] == "1"
    assert config["camel.kamelet.aws-s3-sink.bucketNameOrArn"] == "archive-bucket"
    assert config["camel.kamelet.aws-s3-sink.region"] == "eu-west-1"
    assert SECRET not in config["camel.kamelet.aws-s3-sink.secretKey"]
    assert not any(SECRET in o or ACCESS in o for o in outputs)


def test_plan_then_apply_sends_only_placeholders_and_a_second_apply_writes_nothing(creds: Path) -> None:
    fake, outputs = FakeConnect(), []
    providers = ["--secret-provider", "aws-credentials=directory"]
    providers += ["--secret-worker-dir", "aws-credentials=/opt/kafka/secrets/aws"]
    code, out = cli(fake, creds, "plan", *providers, outputs=outputs)
    assert code == 2 and "camel-s3-archive" in out, outputs  # 2: the plan has changes
    assert fake.writes() == []
    assert cli(fake, creds, "apply", *providers, outputs=outputs)[0] == 0, outputs
    assert fake.writes() == ["POST /connectors"]  # a create
    stored = fake.connectors["camel-s3-archive"]["config"]
    assert stored["camel.kamelet.aws-s3-sink.secretKey"] == "${directory:/opt/kafka/secrets/aws:secret-key}"
    assert stored["camel.kamelet.aws-s3-sink.accessKey"] == "${directory:/opt/kafka/secrets/aws:access-key}"
    assert all(SECRET.encode() not in (r.content or b"") for r in fake.requests)
    fake.requests.clear()
    assert cli(fake, creds, "apply", *providers, outputs=outputs)[0] == 0
    assert fake.writes() == []
    code, out = cli(fake, creds, "plan", *providers, outputs=outputs)
    assert code == 0, outputs
    assert not any(SECRET in o or ACCESS in o for o in outputs)
