"""--secret-provider directory: a mounted Secret's keys render as `${directory:PATH:KEY}`, which the worker's
DirectoryConfigProvider resolves, so the value never crosses the REST API — while it stays masked anywhere
Connect might still echo it."""

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
    settings = InputSettings(secret_dirs=[f"db={path}"], secret_provider="directory")
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
        secret_dirs=[f"db={path}"], secret_provider="directory", secret_worker_dirs=["db=/opt/secrets/pg/"]
    )
    inputs, _ = load_inputs(settings, environ={})
    assert inputs.secrets["db"]["password"] == "${directory:/opt/secrets/pg:password}"
    bad = dataclasses.replace(settings, secret_worker_dirs=["nope=/x"])
    with pytest.raises(ConfigError, match="--secret-worker-dir nope=/x: no --secret-dir is named nope"):
        load_inputs(bad, environ={})


def test_the_flags_and_their_default() -> None:
    assert settings_from_environ({}).inputs.secret_provider == "none"
    settings = settings_from_environ(
        {
            "CONNECT_RECONCILER_SECRET_PROVIDER": "directory",
            "CONNECT_RECONCILER_SECRET_WORKER_DIR": "db=/mnt/db:kafka=/mnt/kafka",
        }
    )
    assert settings.inputs.secret_provider == "directory"
    assert list(settings.inputs.secret_worker_dirs) == ["db=/mnt/db", "kafka=/mnt/kafka"]


def test_a_misspelt_provider_is_refused_rather_than_sending_the_value() -> None:
    with pytest.raises(ConfigError, match="expected one of none, directory"):
        settings_from_environ({"CONNECT_RECONCILER_SECRET_PROVIDER": "dirctory"})
