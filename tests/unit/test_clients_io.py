"""Edge loaders on temporary files: template inputs (properties, volumes, env) and the clusters file."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.clients.clusters import ClusterSettings, credential_values, http_client, load_clusters
from reconciler.clients.connect import ConnectClient
from reconciler.clients.inputs import load_inputs
from reconciler.clients.sources import load_configmaps
from reconciler.errors import ConfigError
from reconciler.settings import ConnectSettings, InputSettings


def test_inputs_from_properties_volumes_and_env(tmp_path: Path) -> None:
    props = tmp_path / "props"
    props.mkdir()
    (props / "a.properties").write_text("schema.registry.url=http://sr\nbasic.auth.user.info=u:p4ssw0rd\n")
    (props / "b.properties").write_text(
        'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="KEY1" password="SEC=1";\n'
    )
    (props / "ignored.txt").write_text("x=1")
    vol = tmp_path / "db-creds"
    (vol / "..2026_11_22").mkdir(parents=True)
    (vol / "password").write_text("vol-pass\n")
    (vol / "..data").symlink_to(vol / "..2026_11_22")
    inputs, warnings = load_inputs(
        InputSettings(
            properties_dirs=[str(props)],
            secret_dirs=[str(vol)],
            files_dirs=[f"shared={props}"],
            env_allow="APP_.*|DB_PASSWORD",
            secret_env=["APP_OPAQUE"],
        ),
        environ={
            "APP_STAGE": "dev",
            "APP_OPAQUE": "opaque-value",
            "DB_PASSWORD": "env-pass",
            "HOME": "/root",
        },
    )
    assert warnings == []
    assert inputs.env == {
        "APP_STAGE": "dev",
        "APP_OPAQUE": "opaque-value",
        "DB_PASSWORD": "env-pass",
        "KAFKA_API_KEY": "KEY1",
        "KAFKA_API_SECRET": "SEC=1",
    }
    assert inputs.variables["SCHEMA_REGISTRY_URL"] == "http://sr"
    assert inputs.secrets == {"db-creds": {"password": "vol-pass\n"}}
    assert set(inputs.files["shared"]) == {"a.properties", "b.properties", "ignored.txt"}
    assert {
        "vol-pass\n",
        "vol-pass",
        "env-pass",
        "opaque-value",
        "u:p4ssw0rd",
        "KEY1",
        "SEC=1",
    } <= inputs.secret_values
    assert "dev" not in inputs.secret_values and "http://sr" not in inputs.secret_values


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            InputSettings(properties_dirs=["/nonexistent/props"]),
            "properties directory /nonexistent/props does not exist",
        ),
        (
            InputSettings(secret_dirs=["db=/nonexistent/vol"]),
            "mounted volume /nonexistent/vol is not a directory",
        ),
        (InputSettings(env_allow="(["), "is not a regular expression"),
    ],
)
def test_input_errors(settings: InputSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_inputs(settings, environ={})


def test_clusters_file_with_credentials_and_default_url(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-pw\n")
    f = tmp_path / "clusters.yaml"
    f.write_text(
        "default: main\nclusters:\n"
        "  main: {username: admin, password_file: " + str(tmp_path / "pw") + "}\n"
        "  east: {url: 'https://east:8083', username_env: EAST_USER, password_env: EAST_PW}\n"
    )
    clusters, default = load_clusters(
        ConnectSettings(url="http://main:8083", clusters_file=str(f)),
        environ={"EAST_USER": "u", "EAST_PW": "env-pw"},
    )
    assert default == "main"
    assert (clusters["main"].url, clusters["main"].username, clusters["main"].password) == (
        "http://main:8083",
        "admin",
        "file-pw",
    )
    assert (clusters["east"].url, clusters["east"].password) == ("https://east:8083", "env-pw")
    assert "file-pw" not in repr(clusters["main"])


@pytest.mark.parametrize(
    ("text", "url", "message"),
    [
        ("clusters: {a: {url: x, pasword: y}}", None, "unknown key"),
        ("clusters: {a: {username: u}}", None, "cluster a has no url"),
        ("clusters: {a: {url: x, password_env: NOPE}}", None, "password_env names NOPE, which is not set"),
        ("clusters: [1]", None, "expected a map"),
        ("clusters: {}", None, "no URL for the default cluster"),
    ],
)
def test_clusters_file_errors(tmp_path: Path, text: str, url: str | None, message: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_clusters(ConnectSettings(url=url, clusters_file=str(f)), environ={})


def test_sources_skip_other_kinds_and_report_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cm.yml").write_text("kind: ConfigMap\nmetadata: {name: x}\ndata: {}\n")
    (tmp_path / "kustomization.yaml").write_text("kind: Kustomization\nresources: []\n")
    (tmp_path / "notes.txt").write_text("kind: ConfigMap")
    docs, errors = load_configmaps([str(tmp_path), str(tmp_path / "missing.yaml")])
    assert [d.name for d in docs] == ["x"]
    assert [str(e) for e in errors] == [f"{tmp_path / 'missing.yaml'}: no such file or directory"]


def test_basic_auth_is_sent_and_the_password_scrubbed_from_errors() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, text="User cannot access the resource.")

    settings = ClusterSettings(name="main", url="http://c:8083", username="admin", password="pw-Very-Secret")
    client = ConnectClient(http_client(settings, transport=httpx.MockTransport(handler)), cluster="main")
    with pytest.raises(Exception, match="HTTP 401: User cannot access the resource") as info:
        client.list_names()
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert "pw-Very-Secret" not in str(info.value) and "pw-Very-Secret" not in repr(settings)


def test_a_password_inside_a_cluster_url_becomes_basic_auth_and_a_secret(tmp_path: Path) -> None:
    f = tmp_path / "clusters.yaml"
    f.write_text("clusters:\n  east: {url: 'https://ops:p%40ss-East-9@east:8083/'}\n")
    from reconciler.entrypoints.flags import settings_from_values  # noqa: PLC0415

    settings = settings_from_values(
        {"connect_url": "http://admin:url-P%40ss-777@connect:8083", "clusters_file": str(f)}
    )
    assert "url-P" not in repr(settings) and settings.connect.url == "http://connect:8083"
    clusters, _ = load_clusters(settings.connect, environ={})
    main, east = clusters["default"], clusters["east"]
    assert (main.url, main.username, main.password) == ("http://connect:8083", "admin", "url-P@ss-777")
    assert (east.url, east.username, east.password) == ("https://east:8083/", "ops", "p@ss-East-9")
    # Both the decoded and the percent-encoded form are scrubbed wherever they appear.
    assert {"url-P@ss-777", "url-P%40ss-777", "p@ss-East-9", "p%40ss-East-9"} <= credential_values(clusters)
    assert "url-P" not in repr(main) and "p@ss" not in repr(east)


def test_a_missing_ca_file_or_an_unreadable_properties_file_is_one_clear_config_error(tmp_path: Path) -> None:
    settings = ClusterSettings(name="main", url="https://c:8083", ca_file=str(tmp_path / "nope.crt"))
    with pytest.raises(ConfigError, match=r"cluster main: cannot load TLS files \(.*nope.crt\)"):
        http_client(settings)
    props = tmp_path / "props"
    props.mkdir()
    (props / "bad.properties").write_bytes(b"a=\\u12G4\n")
    with pytest.raises(ConfigError, match=r"properties file .*bad.properties: line 1: malformed"):
        load_inputs(InputSettings(properties_dirs=[str(props)]), environ={})
    (props / "bad.properties").unlink()
    (props / "dir.properties").mkdir()  # a directory named *.properties
    with pytest.raises(ConfigError, match=r"properties file .*dir.properties: cannot read"):
        load_inputs(InputSettings(properties_dirs=[str(props)]), environ={})
