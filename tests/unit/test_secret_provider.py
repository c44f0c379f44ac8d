"""--secret-provider directory (every volume, or NAME=directory for one) and --properties-provider file:
mounted Secret keys and secret properties render as `${directory:PATH:KEY}` and `${file:PATH:key}`, which
the worker's config providers resolve, so the value never crosses the REST API — while it stays masked
anywhere Connect might still echo it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reconciler.clients.inputs import load_inputs
from reconciler.core.rendering import Renderer
from reconciler.entrypoints.flags import settings_from_environ
from reconciler.errors import ConfigError
from reconciler.model import ConfigMapDoc
from reconciler.pipeline import reconcile
from reconciler.settings import InputSettings
from tests.fake_connect import FakeConnect
from tests.support import runtime_for

SECRET = "s3cr3t-pg-password-77"
TEMPLATE = json.dumps({"name": "cdc", "config": {"connector.class": "X", "database.user": "app"}}).replace(
    '"app"}', '"app", "database.password": $secrets.db.password}'
)


def volume(tmp_path: Path) -> Path:
    path = tmp_path / "db"
    path.mkdir()
    (path / "password").write_text(SECRET)
    return path


def test_a_secret_renders_as_a_placeholder_and_only_the_placeholder_reaches_connect(tmp_path: Path) -> None:
    path = volume(tmp_path)
    settings = InputSettings(secret_dirs=[f"db={path}"], secret_providers=["directory"])
    inputs, _ = load_inputs(settings, environ={})
    assert inputs.secrets == {"db": {"password": f"${{directory:{path}:password}}"}}
    assert SECRET in inputs.secret_values  # still masked wherever Connect might echo it
    fake = FakeConnect()
    rt = dataclasses.replace(runtime_for(fake, inputs=inputs), renderer=Renderer(inputs))
    doc = ConfigMapDoc("cdc", "apps", {"destination": "connect"}, {"cdc.json": TEMPLATE})
    report = reconcile([doc], rt=rt, dry_run=False)
    assert report.ok
    stored = fake.connectors["cdc"]["config"]
    assert stored["database.password"] == f"${{directory:{path}:password}}"
    assert all(SECRET.encode() not in (r.content or b"") for r in fake.requests)
    # Rotation changes the file, not the placeholder: no config write (a restart picks the new value up).
    (path / "password").write_text("rotated-value-88")
    rotated, _ = load_inputs(settings, environ={})
    fake.requests.clear()
    rt = dataclasses.replace(runtime_for(fake, inputs=rotated), renderer=Renderer(rotated))
    assert reconcile([doc], rt=rt, dry_run=False).ok and fake.writes() == []


def test_the_worker_mount_can_differ_and_must_name_a_secret_dir(tmp_path: Path) -> None:
    path = volume(tmp_path)
    settings = InputSettings(
        secret_dirs=[f"db={path}"], secret_providers=["directory"], secret_worker_dirs=["db=/opt/secrets/pg/"]
    )
    inputs, _ = load_inputs(settings, environ={})
    assert inputs.secrets["db"]["password"] == "${directory:/opt/secrets/pg:password}"
    bad = dataclasses.replace(settings, secret_worker_dirs=["nope=/x"])
    with pytest.raises(ConfigError, match="--secret-worker-dir nope=/x: no --secret-dir is named nope"):
        load_inputs(bad, environ={})


def test_the_flags_and_their_default() -> None:
    assert settings_from_environ({}).inputs.secret_providers == ()
    assert settings_from_environ({}).inputs.properties_provider == "none"
    settings = settings_from_environ(
        {
            "CONNECT_RECONCILER_SECRET_PROVIDER": "directory",
            "CONNECT_RECONCILER_SECRET_WORKER_DIR": "db=/mnt/db:kafka=/mnt/kafka",
        }
    )
    assert list(settings.inputs.secret_providers) == ["directory"]
    assert list(settings.inputs.secret_worker_dirs) == ["db=/mnt/db", "kafka=/mnt/kafka"]


@pytest.mark.parametrize("spec", ["dirctory", "db=dirctory", "=directory", "file"])
def test_a_misspelt_provider_is_refused_rather_than_sending_the_value(spec: str) -> None:
    with pytest.raises(ConfigError, match="expected one of none, directory, alone or as NAME=PROVIDER"):
        settings_from_environ({"CONNECT_RECONCILER_SECRET_PROVIDER": spec})
    with pytest.raises(ConfigError, match="PROPERTIES_PROVIDER='vault': expected one of none, file"):
        settings_from_environ({"CONNECT_RECONCILER_PROPERTIES_PROVIDER": "vault"})


def test_a_provider_per_volume_and_an_exemption(tmp_path: Path) -> None:
    db = volume(tmp_path)
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "truststore-password").write_text("tls-pass-31")
    both = [f"db={db}", f"tls={tls}"]
    one = InputSettings(secret_dirs=both, secret_providers=["db=directory"])
    inputs, _ = load_inputs(one, environ={})
    assert inputs.secrets == {
        "db": {"password": f"${{directory:{db}:password}}"},
        "tls": {"truststore-password": "tls-pass-31"},
    }
    every_but_tls = InputSettings(secret_dirs=both, secret_providers=["directory", "tls=none"])
    inputs, _ = load_inputs(every_but_tls, environ={})
    assert inputs.secrets["db"]["password"].startswith("${directory:")
    assert inputs.secrets["tls"] == {"truststore-password": "tls-pass-31"}
    assert {"tls-pass-31", SECRET} <= inputs.secret_values
    with pytest.raises(ConfigError, match="--secret-provider kafka=directory: no --secret-dir is named kafka"):
        load_inputs(InputSettings(secret_dirs=both, secret_providers=["kafka=directory"]), environ={})


def test_a_key_kafka_could_not_parse_back_is_an_error_not_a_broken_placeholder(tmp_path: Path) -> None:
    path = volume(tmp_path)
    (path / "odd:key").write_text("x")
    with pytest.raises(ConfigError, match=r"--secret-dir db: key odd:key: cannot be a \$\{directory:...\}"):
        load_inputs(InputSettings(secret_dirs=[f"db={path}"], secret_providers=["directory"]), environ={})


def props(tmp_path: Path) -> Path:
    path = tmp_path / "props"
    path.mkdir()
    (path / "db.properties").write_text(f"database.hostname=pg.internal\ndatabase.password={SECRET}\n")
    return path


def test_secret_properties_render_as_file_placeholders_the_others_as_values(tmp_path: Path) -> None:
    path = props(tmp_path)
    settings = InputSettings(
        properties_dirs=[str(path)],
        properties_provider="file",
        properties_worker_dirs=[f"{path}=/opt/kafka/props/"],
    )
    inputs, _ = load_inputs(settings, environ={})
    assert inputs.variables == {
        "DATABASE_HOSTNAME": "pg.internal",
        "DATABASE_PASSWORD": "${file:/opt/kafka/props/db.properties:database.password}",
    }
    assert SECRET in inputs.secret_values
    same_path, _ = load_inputs(dataclasses.replace(settings, properties_worker_dirs=()), environ={})
    assert same_path.variables["DATABASE_PASSWORD"] == f"${{file:{path}/db.properties:database.password}}"
    off, _ = load_inputs(dataclasses.replace(settings, properties_provider="none"), environ={})
    assert off.variables["DATABASE_PASSWORD"] == SECRET
    with pytest.raises(ConfigError, match="--properties-worker-dir /elsewhere=/x: no --properties-dir is"):
        load_inputs(dataclasses.replace(settings, properties_worker_dirs=["/elsewhere=/x"]), environ={})


def test_a_file_placeholder_reaches_connect_and_rotation_writes_nothing(tmp_path: Path) -> None:
    path = props(tmp_path)
    settings = InputSettings(properties_dirs=[str(path)], properties_provider="file")
    template = json.dumps({"name": "cdc", "config": {"connector.class": "X"}}).replace(
        '"X"}', '"X", "database.password": $DATABASE_PASSWORD, "database.hostname": $DATABASE_HOSTNAME}'
    )
    doc = ConfigMapDoc("cdc", "apps", {"destination": "connect"}, {"cdc.json": template})
    fake = FakeConnect()
    for value in (SECRET, "rotated-value-88"):
        (path / "db.properties").write_text(f"database.hostname=pg.internal\ndatabase.password={value}\n")
        inputs, _ = load_inputs(settings, environ={})
        rt = dataclasses.replace(runtime_for(fake, inputs=inputs), renderer=Renderer(inputs))
        assert reconcile([doc], rt=rt, dry_run=False).ok
        assert all(value.encode() not in (r.content or b"") for r in fake.requests)
    assert len(fake.writes()) == 1  # the create; the rotation changed no placeholder
    assert fake.connectors["cdc"]["config"]["database.password"] == (
        f"${{file:{path}/db.properties:database.password}}"
    )
    assert fake.connectors["cdc"]["config"]["database.hostname"] == "pg.internal"
