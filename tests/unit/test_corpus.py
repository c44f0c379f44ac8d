"""The bad-input corpus (tests/corpus): every broken or hostile case through render, plan, apply, status
and the hook, against the in-memory Connect and the real jq sandbox process.

For each case and each command: the expected one-line error names the ConfigMap (or the file); the broken
ConfigMap's live connectors get no write; the good ConfigMap next to it is still applied; no traceback;
and no known secret appears in any captured output in any encoding it could be printed in.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import structlog
import yaml

from reconciler.entrypoints import hook
from tests.fake_connect import FakeConnect
from tests.support import CliWorkspace, route_hook_to

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MANIFEST: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "expected.yaml").read_text())
MODES = ("render", "plan", "apply", "status", "hook")
CLASS = "org.apache.kafka.connect.file.FileStreamSourceConnector"

VOLUME_PASSWORD = "Vol-Pa55word-7f3a9c1e"
VOLUME_QUOTED = 'q"uo\\te-Séc-ret-9b2x'
VOLUME_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7xKp3\n"
    "Qx9f3KpL0mZtR4vW8sYc2dHn6jU1bA5eG7iK9oNqSrTuVwXyZaBcDe\n"
    "-----END PRIVATE KEY-----\n"
)
ENV_PASSWORD = "Env-Secret-Value-4242"
PROP_PASSWORD = "Prop-Secret-Value-7777"
DROPPED_TOKEN = "Old-Token-Value-31337"  # named like a secret, kept out of templates by --env-allow
SECRETS = (VOLUME_PASSWORD, VOLUME_QUOTED, VOLUME_PEM, ENV_PASSWORD, PROP_PASSWORD, DROPPED_TOKEN)

GOOD = f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: good
  namespace: corpus
  labels:
    destination: connect
data:
  good.json: |
    {{"name": "corpus-good", "config": {{"connector.class": "{CLASS}", "topic": "good", "file": "/tmp/good",
      "city": $CITY, "db.password": $secrets.db.password, "env.password": env.DB_PASSWORD,
      "prop.password": $DB_PASSWORD, "pem.key": $secrets.db.pem}}}}
"""


@dataclass(frozen=True)
class Case:
    id: str
    files: tuple[str, ...]
    error: str | None
    names: str
    seed: tuple[str, ...]
    applied: Mapping[str, Mapping[str, str]]
    api: bool
    good: bool
    setup: str | None
    only: tuple[str, ...]

    @classmethod
    def load(cls, cid: str, spec: Mapping[str, Any]) -> Case:
        return cls(
            id=cid,
            files=tuple(spec.get("files", [f"{cid}.yaml"])),
            error=spec["error"],
            names=spec.get("names", f"corpus/{cid}"),
            seed=tuple(spec.get("seed", [cid])),
            applied=spec.get("applied", {}),
            api=spec.get("api", True),
            good=spec.get("good", True),
            setup=spec.get("setup"),
            only=tuple(spec.get("only", MODES)),
        )


CASES = [Case.load(cid, spec) for cid, spec in MANIFEST.items()]


def encodings(secret: str) -> set[str]:
    """Every form in which a secret could be printed: raw, JSON-escaped, whitespace-collapsed, each line,
    and its first 8 characters (jq and truncation print prefixes)."""
    forms = {secret.strip(), json.dumps(secret)[1:-1], " ".join(secret.split()), secret.strip()[:8]}
    forms |= {line for line in secret.splitlines() if len(line) >= 8 and not line.startswith("-----")}
    return {f for f in forms if f}


def assert_no_secret(outputs: list[str]) -> None:
    for text in outputs:
        for secret in SECRETS:
            for form in encodings(secret):
                assert form not in text, f"secret form {form[:3]}… printed in: {text[:2000]}"


def seed_config(name: str) -> dict[str, str]:
    return {"connector.class": CLASS, "topic": "seed", "file": f"/tmp/seed-{name}"}


@dataclass
class World:
    case: Case
    ws: CliWorkspace
    fake: FakeConnect
    before: dict[str, Any] = field(default_factory=dict)



def _rejecting(fake: FakeConnect, name: str) -> Callable[[httpx.Request], httpx.Response]:
    """Connect refusing one connector's create, whichever way it is sent (POST or PUT)."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        targets = body.get("name") == name or request.url.path == f"/connectors/{name}/config"
        if request.method in ("POST", "PUT") and targets:
            fake.requests.append(request)
            message = f"Connector configuration is invalid and contains the following 1 error(s): {name}"
            return httpx.Response(400, json={"error_code": 400, "message": message})
        return fake.handle(request)

    return handle


def _setup(case: Case, ws: CliWorkspace, fake: FakeConnect) -> None:
    match case.setup:
        case "seed-live-secret":
            held = VOLUME_PASSWORD if case.id == "secret-moved-to-provider" else DROPPED_TOKEN
            key = "connection.pass" if case.id == "secret-moved-to-provider" else "auth.header"
            extra = (
                {"connection.url": "jdbc:postgresql://db/x", "connection.user": "app"}
                if case.id == "secret-moved-to-provider"
                else {}
            )
            fake.add(case.id, {**seed_config(case.id), "topic": "corpus", "file": f"/tmp/{case.id}", **extra, key: held})
        case "configmap-broken-symlink":
            (ws.cms / "dangling.yaml").symlink_to(ws.cms / "missing-target.yaml")
        case "configmap-directory-named-yaml":
            (ws.cms / "dir.yaml").mkdir()
        case "properties-broken-symlink":
            (ws.props / "dangling.properties").symlink_to(ws.props / "missing-target")
        case "properties-directory":
            (ws.props / "nested.properties").mkdir()
        case "properties-latin1":
            text = (ws.props / "app.properties").read_text().replace("city=Zurich", "city=Zürich")
            (ws.props / "app.properties").write_bytes(text.encode("latin-1"))


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    case: Case = request.param
    fake = FakeConnect()
    handler = _rejecting(fake, case.id) if case.setup == "connect-rejects" else fake.handle
    ws = CliWorkspace(
        tmp_path,
        url="http://connect.test",
        properties=f"city=Zurich\ndb.password={PROP_PASSWORD}\n",
        secret_volume="db",
        secret=VOLUME_PASSWORD,
        environ={
            "DB_PASSWORD": ENV_PASSWORD,
            "OLD_API_TOKEN": DROPPED_TOKEN,
            "CONNECT_RECONCILER_ENV_ALLOW": "(?!OLD_).*",
            "CONNECT_RECONCILER_RENDER_TIMEOUT": "1",
        },
        transport=httpx.MockTransport(handler),
    )
    (ws.secret / "pem").write_text(VOLUME_PEM)
    (ws.secret / "quoted").write_text(VOLUME_QUOTED)
    ws.write("good.yaml", GOOD)
    for name in case.files:
        (ws.cms / name).write_bytes((CORPUS / "cases" / name).read_bytes())
    for name in case.seed:
        fake.add(name, seed_config(name))
    _setup(case, ws, fake)
    w = World(case, ws, fake)
    w.before = copy.deepcopy(fake.connectors)
    yield w


def _binding_context(case: Case, ws: CliWorkspace) -> list[dict[str, Any]]:
    """What shell-operator hands the hook: the ConfigMaps as the API server would hold them."""
    objects = []
    for path in sorted(ws.cms.glob("*.yaml")):
        if not path.is_file():
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                objects.append({"object": json.loads(json.dumps(doc))})
    return [{"type": "Synchronization", "binding": "connector-configmaps", "objects": objects}]


def run_hook(w: World, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    assert w.ws.transport is not None
    route_hook_to(monkeypatch, w.ws.transport)
    context = w.ws.cms.parent / "context.json"
    context.write_text(json.dumps(_binding_context(w.case, w.ws)))
    environ = {
        **w.ws.environ,
        "BINDING_CONTEXT_PATH": str(context),
        "CONNECT_RECONCILER_CONNECT_URL": "http://connect.test",
        "CONNECT_RECONCILER_PROPERTIES_DIR": str(w.ws.props),
        "CONNECT_RECONCILER_SECRET_DIR": str(w.ws.secret),
    }
    capfd.readouterr()
    try:
        code = hook.main([], environ=environ)
    finally:
        # The hook logs to the sys.stderr of the moment: pytest's capture, closed after this test.
        structlog.reset_defaults()
    out, err = capfd.readouterr()
    lines = []
    for line in err.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        lines.append(" ".join(str(v) for v in record.values()))
    return code, [out, err, *lines]


def _untouched(w: World) -> None:
    for name in w.case.seed:
        assert w.fake.connectors.get(name) == w.before.get(name), f"live connector {name} was changed"
        path = f"/connectors/{quote(name, safe='')}"
        writes = [
            r
            for r in w.fake.requests
            if r.method != "GET"
            and (r.url.raw_path.decode().startswith(path) or (r.content and json.loads(r.content).get("name") == name))
        ]
        assert not writes, f"a write reached live connector {name}: {writes}"


def _applied(w: World) -> None:
    if w.case.good:
        assert "corpus-good" in w.fake.connectors, "the good ConfigMap next to the broken one was not applied"
    else:
        assert "corpus-good" not in w.fake.connectors, "a run with unusable inputs wrote anyway"
    for name, subset in w.case.applied.items():
        assert name in w.fake.connectors, f"{name} was not applied"
        config = w.fake.connectors[name]["config"]
        assert {k: config.get(k) for k in subset} == dict(subset)


def _error_line(w: World, outputs: list[str]) -> None:
    lines = [line for text in outputs for line in text.splitlines()]
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    if w.case.error is None:
        return
    rx = re.compile(w.case.error)
    hits = [line for line in lines if rx.search(line)]
    assert hits, f"no line matches {w.case.error!r} in:\n" + "\n".join(lines)
    assert any(w.case.names in line for line in hits), f"the error does not name {w.case.names}: {hits}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("world", CASES, ids=[c.id for c in CASES], indirect=True)
def test_corpus_case(
    world: World, mode: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    case = world.case
    visible = mode in case.only  # render never talks to Connect, plan never writes
    if not visible:
        world.case = case = replace(case, error=None)
    failing = case.error is not None
    if mode == "hook":
        if not case.api:
            pytest.skip("the API server cannot hold this input; the hook never sees it")
        code, outputs = run_hook(world, monkeypatch, capfd)
        assert code == 0, "a permanent per-ConfigMap problem must not make shell-operator retry forever"
        _applied(world)
        _untouched(world)
    else:
        if mode == "status":
            world.ws.cli("apply")
        code, out, err = world.ws.cli(mode)
        outputs = [out, err]
        expected = {"render": 0, "plan": 2, "apply": 0, "status": 0}[mode]
        if not case.good:
            expected = 1
        if visible:
            assert (code != 0) if failing else (code == expected), f"exit {code}\n{out}\n{err}"
        if mode in ("render", "plan"):
            assert world.fake.writes() == [], "render and plan never write"
        if mode == "apply":
            _applied(world)
        if mode in ("apply", "status"):
            _untouched(world)
        outputs = world.ws.outputs
    _error_line(world, outputs)
    assert_no_secret([*outputs, capfd.readouterr().err])


def test_the_corpus_and_its_manifest_match() -> None:
    files = {p.name for p in (CORPUS / "cases").iterdir()}
    listed = {f for c in CASES for f in c.files}
    assert files == listed
    assert len(CASES) >= 89
    assert os.path.getsize(CORPUS / "cases" / "yaml-deep-flow.yaml") > 40_000
