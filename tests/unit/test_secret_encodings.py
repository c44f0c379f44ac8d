"""A known secret never leaves in any encoding: raw, JSON-escaped, line by line, whitespace-collapsed, or
cut off (jq's quoted starts, a length limit). Through `Redactor.scrub`, the Connect client's error
messages, the planner (the live side of a diff included) and every report the CLI prints."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import jq
import pytest
import structlog

from reconciler.clients.connect import MAX_MESSAGE_CHARS, ConnectClient, error_for
from reconciler.core import redaction
from reconciler.core.planning import build_plan, diff_config
from reconciler.core.redaction import Redactor, encodings, mask, references_secret
from reconciler.core.rendering import render_connector
from reconciler.core.status import status_rows
from reconciler.errors import ConnectApiError, RenderError
from reconciler.logs import configure_logging, use_redactor
from reconciler.model import (
    Action,
    ActionKind,
    ClusterState,
    ConnectorSpec,
    DesiredConnector,
    DesiredState,
    LiveConnector,
    Outcome,
    RenderInputs,
    Report,
    SourceRef,
)
from reconciler.report import render_connectors, render_json, render_status, render_text

PASSWORD = "Vol-Pa55word-7f3a9c1e-and-some-more"
QUOTED = 'q"uo\\te-Séc-ret-9b2x-and-a-longer-tail\n'  # a quote, a backslash, non-ASCII and a trailing newline
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7xKp3\n"
    "Qx9f3KpL0mZtR4vW8sYc2dHn6jU1bA5eG7iK9oNqSrTuVwXyZaBcDe\n"
    "-----END PRIVATE KEY-----\n"
)
SECRETS = (PASSWORD, QUOTED, PEM)
R = Redactor(frozenset(SECRETS))
SOURCE = SourceRef("ns/cm", "c.json")


def forms(secret: str) -> set[str]:
    """What must never be found in an output: the secret and its first 8 characters in each encoding,
    and each line of it that is not PEM armor."""
    whole = {secret.strip(), json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    whole |= {json.dumps(json.dumps(secret)[1:-1])[1:-1], " ".join(secret.split())}
    found = whole | {w[:8] for w in whole}
    found |= {line for line in secret.splitlines() if len(line) >= 8 and not line.startswith("-----")}
    return found


def assert_clean(*texts: str, secrets: tuple[str, ...] = SECRETS) -> None:
    for text in texts:
        for secret in secrets:
            for form in forms(secret):
                assert form not in text, f"{form!r} printed in {text!r}"


def jq_error(program: str, value: str) -> str:
    try:
        jq.compile(program, args={"s": value}).input_value(None).all()
    except ValueError as exc:
        return str(exc)
    raise AssertionError("the program did not fail")


# --- Redactor.scrub ----------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", SECRETS, ids=["plain", "quoted", "pem"])
@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s,
        lambda s: json.dumps(s)[1:-1],
        lambda s: json.dumps(s, ensure_ascii=False)[1:-1],  # jq's tojson and error({...}) keep UTF-8
        lambda s: json.dumps(json.dumps(s)[1:-1])[1:-1],  # a tojson value inside a JSON text
        lambda s: " ".join(s.split()),  # Connect's message, collapsed to one line
        lambda s: s.strip(),
    ],
    ids=["raw", "json", "json-utf8", "json-twice", "collapsed", "stripped"],
)
def test_every_encoding_of_a_known_secret_is_masked_with_the_digest_of_the_whole(
    secret: str, encode: Any
) -> None:
    text = f'Invalid value "{encode(secret)}" for configuration x'
    scrubbed = R.scrub(text)
    assert_clean(scrubbed)
    assert mask(secret) in scrubbed or mask(secret.strip()) in scrubbed


def test_each_line_of_a_multi_line_secret_is_masked_on_its_own() -> None:
    lines = PEM.splitlines()
    for line in lines[1:-1]:
        assert R.scrub(f"got {line} here") == f"got {mask(PEM)} here"
    # PEM armor is the same in every key: alone it is no secret, and public certificates carry it.
    assert R.scrub("-----BEGIN PRIVATE KEY----- is armor") == "-----BEGIN PRIVATE KEY----- is armor"
    assert not R.is_secret_field("ssl.truststore.certificates", "-----END PRIVATE KEY-----")


@pytest.mark.parametrize(
    "program",
    ["$s + 1", "$s | keys", "$s | tonumber", '"abc" | .[$s]', "$s | .[]", "$s | @base64d"],
)
@pytest.mark.parametrize("secret", SECRETS, ids=["plain", "quoted", "pem"])
def test_the_start_jq_quotes_in_its_errors_is_masked(program: str, secret: str) -> None:
    message = jq_error(program, secret)
    assert "..." in message  # jq quoted only the start of the string
    assert_clean(R.scrub(message))
    assert mask(secret) in R.scrub(message)


@pytest.mark.parametrize("secret", SECRETS, ids=["plain", "quoted", "pem"])
@pytest.mark.parametrize("keep", [8, 12, 19])
def test_a_secret_cut_by_a_length_limit_is_masked(secret: str, keep: int) -> None:
    for encoded in (secret, json.dumps(secret)[1:-1], " ".join(secret.split())):
        for text in (f"echo: {encoded[:keep]}", f"echo: {encoded[:keep]}...", f"a: {encoded[:keep]}\nb: ok"):
            scrubbed = R.scrub(text)
            assert encoded[:keep] not in scrubbed and mask(secret) in scrubbed, scrubbed


def test_a_shared_start_without_a_visible_cut_is_not_masked() -> None:
    r = Redactor(frozenset({"jdbc:postgresql://db.internal:5432/prod?password=Xy9-q", "Pa55word-abcdef"}))
    ordinary = "connection.url jdbc:postgresql://db.internal:5432/staging is unreachable"
    assert r.scrub(ordinary) == ordinary
    assert r.scrub("Pa55word-a and more") == "Pa55word-a and more"
    assert r.scrub("cut: Pa55wor") == "cut: Pa55wor"  # 7 characters: below the minimum
    assert r.scrub("cut: Pa55word...") == f"cut: {mask('Pa55word-abcdef')}..."


def test_secrets_sharing_a_start_are_each_cut_off_at_their_longest() -> None:
    a, b = "eyJhbGciOiJIUzI1NiJ9.payload-of-a-1", "eyJhbGciOiJIUzI1NiJ9.other-payload-b-22"
    r = Redactor(frozenset({a, b}))
    assert r.scrub(f"token {b[:30]}...") == f"token {mask(b)}..."
    assert r.scrub(f"token {a[:25]}") == f"token {mask(a)}"
    assert r.scrub(f"{a} and {b}") == f"{mask(a)} and {mask(b)}"


def test_short_and_ordinary_values_keep_their_old_rules() -> None:
    r = Redactor(frozenset({"true", "12345", "ab", "1234567890123"}))
    text = "enabled=true tasks=12345 ab 12345678901..."
    assert r.scrub(text) == text
    assert encodings("true") == frozenset() and encodings("ab") == frozenset()


def test_a_secret_in_a_url_path_is_masked() -> None:
    r = Redactor(frozenset({"c-with/slash-secret"}))
    assert (
        r.scrub("PUT /connectors/c-with%2Fslash-secret/config")
        == f"PUT /connectors/{mask('c-with/slash-secret')}/config"
    )


def test_the_needles_are_built_once_per_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = redaction._Needles.build

    def counting(secrets: Any) -> Any:
        built.append(1)
        return real(secrets)

    monkeypatch.setattr(redaction._Needles, "build", staticmethod(counting))
    r = Redactor(frozenset(SECRETS))
    for _ in range(50):
        r.scrub(f"x {PASSWORD} y")
        r.is_secret_field("topic", "x")
    assert built == [1]
    assert r == Redactor(frozenset(SECRETS)) and hash(r) == hash(Redactor(frozenset(SECRETS)))


def test_scrub_tree_masks_keys_too() -> None:
    tree = {PASSWORD: [f"a {PASSWORD}", ("b",)], "n": 1}
    assert R.scrub_tree(tree) == {mask(PASSWORD): [f"a {mask(PASSWORD)}", ["b"]], "n": 1}


def test_a_value_built_with_tojson_is_a_secret_field() -> None:
    by_jq = jq.compile('{"user": "u", "password": $s} | tojson', args={"s": QUOTED}).input_value(None).first()
    assert QUOTED not in by_jq  # the value holds only the escaped form
    for value in (by_jq, json.dumps({"password": QUOTED})):
        assert R.is_secret_field("creds", value)


def test_a_render_error_quoting_the_start_of_a_secret_is_masked() -> None:
    inputs = RenderInputs(
        secrets={"db": {"password": PASSWORD, "pem": PEM}}, secret_values=frozenset(SECRETS)
    )
    for program in (
        '{"name": "x", "config": {"x": ($secrets.db.password + 1)}}',
        '{"name": "x", "config": {"x": ($secrets.db.pem | tonumber)}}',
        'error({"password": $secrets.db.password, "pem": $secrets.db.pem})',
        'error("bad value " + $secrets.db.password[0:12])',
    ):
        with pytest.raises(RenderError) as info:
            render_connector(ConnectorSpec(SOURCE, program, True), inputs=inputs)
        assert_clean(str(info.value))
        assert "<secret sha256:" in str(info.value)


# --- the Connect client: collapsed and truncated before anyone scrubs ---------------------------------


def _client(status: int, message: str, seen: list[httpx.Request]) -> ConnectClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json={"error_code": status, "message": message})

    return ConnectClient(httpx.Client(base_url="http://connect.test", transport=httpx.MockTransport(handler)))


def test_connects_400_echoing_a_pem_is_scrubbed_after_collapsing() -> None:
    message = (
        "Connector configuration is invalid and contains the following 1 error(s):\n"
        f"Invalid value {PEM} for configuration ssl.keystore.key: not a PKCS#8 key\n"
        "You can also find the above list of errors at the endpoint `/connector-plugins/{connectorType}/config/validate`"
    )
    seen: list[httpx.Request] = []
    with pytest.raises(ConnectApiError) as info:
        _client(400, message, seen).put_config("c", {"connector.class": "X", "ssl.keystore.key": PEM})
    text = str(info.value)
    assert "\n" not in text and PEM.splitlines()[1] in text  # the client itself has no redactor
    scrubbed = R.scrub(text)
    assert_clean(scrubbed)
    assert mask(PEM) in scrubbed and "HTTP 400" in scrubbed and len(seen) == 1


@pytest.mark.parametrize("secret", SECRETS, ids=["plain", "quoted", "pem"])
@pytest.mark.parametrize("keep", [8, 13, 21])
def test_a_secret_cut_by_the_message_limit_is_still_masked(secret: str, keep: int) -> None:
    # The value sits across the cut: its first `keep` characters are kept, the rest is dropped.
    head = "Invalid value "
    padding = "x" * (MAX_MESSAGE_CHARS - keep - len(head) - 1)
    message = f"{head}{padding}={secret}{'y' * 200} for configuration topic"
    request = httpx.Request("PUT", "http://connect.test/connectors/c/config")
    exc = error_for(httpx.Response(500, json={"error_code": 500, "message": message}, request=request))
    text = str(exc)
    kept = text.split("=", 1)[1]
    assert kept.endswith("...") and len(kept.removesuffix("...")) <= keep < len(secret)
    assert_clean(R.scrub(text))
    assert R.scrub(text).endswith(f"={mask(secret)}...")


def test_a_long_message_is_cut_between_words() -> None:
    words = " ".join(f"word{i:03d}" for i in range(200))
    request = httpx.Request("GET", "http://connect.test/connectors")
    text = str(error_for(httpx.Response(500, json={"error_code": 500, "message": words}, request=request)))
    message = text.split("HTTP 500: ", 1)[1]
    assert message.endswith("...") and len(message) <= MAX_MESSAGE_CHARS + 3
    assert message.removesuffix("...").split(" ")[-1].startswith("word") and len(message.split()[-1]) == 10


# --- the planner: the live side of a diff -------------------------------------------------------------


def desired(config: dict[str, str], name: str = "c", redactor: Redactor = R) -> DesiredConnector:
    cfg = {"name": name, "connector.class": "X", **config}
    return DesiredConnector(
        name, cfg, DesiredState.RUNNING, "default", True, SOURCE, redactor.secret_keys(cfg)
    )


def live(config: dict[str, str], name: str = "c") -> LiveConnector:
    return LiveConnector(name, {"name": name, "connector.class": "X", **config}, "RUNNING")


def reports(d: DesiredConnector, lv: LiveConnector | None, redactor: Redactor = R) -> tuple[str, str]:
    state = {"default": ClusterState("default", {lv.name: lv} if lv else {}, "4.1.1")}
    report = Report(build_plan([d], state, redactor=redactor), dry_run=True)
    return render_text(report, redactor=redactor), render_json(report, redactor=redactor)


DROPPED = "Old-Token-Value-31337"  # in Connect, but no longer known to the reconciler as a secret


@pytest.mark.parametrize(
    ("key", "held", "wanted"),
    [
        # The config moved to a config provider: Connect still holds the known secret.
        ("connection.pass", PASSWORD, "${file:/secrets/db:password}"),
        # --env-allow dropped the variable: the value is not known, the reference says what it was.
        ("auth.header", DROPPED, "${env:OLD_API_TOKEN}"),
        # The secret is only on the live side, JSON-escaped inside a tojson value.
        ("creds", json.dumps({"password": QUOTED}), '{"user": "u"}'),
        # The key was removed: only the live side has it, and its name says credential.
        ("connection.password", DROPPED, None),
    ],
)
def test_the_live_side_of_a_diff_is_masked_under_the_desired_sides_rules(
    key: str, held: str, wanted: str | None
) -> None:
    d = desired({} if wanted is None else {key: wanted})
    (change,) = diff_config(d, {**d.config, key: held}, redactor=R)
    assert change.secret and change.before == mask(held)
    assert change.after == (None if wanted is None else mask(wanted))
    text, as_json = reports(d, live({key: held}))
    assert_clean(text, as_json, secrets=(*SECRETS, DROPPED))
    assert mask(held) in text and json.loads(as_json)["connectors"][0]["changes"][0]["secret"] is True


def test_ordinary_changes_and_ordinary_references_stay_readable() -> None:
    d = desired({"tasks.max": "2", "topic": "${file:/etc/app/app.properties:topic}"})
    changes = {
        c.key: c for c in diff_config(d, {**d.config, "tasks.max": "1", "topic": "orders"}, redactor=R)
    }
    assert (changes["tasks.max"].before, changes["tasks.max"].after, changes["tasks.max"].secret) == (
        "1",
        "2",
        False,
    )
    assert changes["topic"].before == "orders" and not changes["topic"].secret


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("${file:/secrets/db:password}", True),
        ("${env:OLD_API_TOKEN}", True),
        (
            "jdbc:x?user=${file:/opt/creds.properties:db.user}&pw=${file:/opt/creds.properties:db.passwd}",
            True,
        ),
        ("${directory:/mnt/secrets:api}", True),
        ("${secretsmanager:prod/db:pw}", True),
        ("${file:/etc/app/app.properties:topic}", False),
        ("${env:TOPIC_PREFIX}", False),
        ("plain password text", False),
    ],
)
def test_references_to_secret_named_items(value: str, secret: bool) -> None:
    assert references_secret(value) is secret


# --- reports: a tojson value and a connector named after a secret --------------------------------------


def test_plan_json_and_status_mask_a_tojson_value_and_a_name_built_from_a_secret() -> None:
    creds = jq.compile('{"user": "u", "password": $s} | tojson', args={"s": QUOTED}).input_value(None).first()
    name = f"c-{PASSWORD}"
    d = desired({"creds": creds, "pem.copy": PEM, "topic": "t"}, name=name)
    assert d.secret_keys == {"name", "creds", "pem.copy"}  # the name holds the secret too
    echo = f"Connector {name} is invalid: creds={creds}"
    failed = Outcome(
        Action(ActionKind.CREATE, name, "default", d.config), ok=False, message=echo, http_status=400
    )
    plan = build_plan([d], {"default": ClusterState("default", {}, "4.1.1")}, redactor=R)
    for dry_run, outcomes in ((True, ()), (False, (failed,))):
        report = Report(plan, outcomes, dry_run=dry_run)
        text = render_text(report, redactor=R)
        as_json = render_json(report, redactor=R)
        assert_clean(text, as_json)
        assert f"c-{mask(PASSWORD)}" in text and "topic" in text
        doc = json.loads(as_json)
        assert doc["connectors"][0]["connector"] == f"c-{mask(PASSWORD)}"
    rows = status_rows([d], {"default": ClusterState("default", {name: live({}, name=name)}, "4.1.1")}, None)
    status = render_status(rows, redactor=R) + render_status(rows, redactor=R, as_json=True)
    rendered = render_connectors([d], redactor=R, as_json=False) + render_connectors(
        [d], redactor=R, as_json=True
    )
    assert_clean(status, rendered)
    assert status.splitlines()[1].startswith(f"c-{mask(PASSWORD)}")


# --- logs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_log_lines_hold_no_secret_in_any_encoding(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging(level="debug", fmt=fmt, stream=stream)
    use_redactor(R)
    try:
        log = structlog.get_logger("test")
        log.warning("retrying", error=jq_error("$s + 1", QUOTED), pem=PEM, collapsed=" ".join(PEM.split()))
        log.info("cut", message=f"echo: {PASSWORD[:12]}...", **{f"k-{PASSWORD}": json.dumps(QUOTED)})
        try:
            raise RuntimeError(f"boom {PEM}")
        except RuntimeError:
            log.exception("failed")
    finally:
        use_redactor(Redactor())
        structlog.reset_defaults()
    output = stream.getvalue()
    assert output.count("<secret sha256:") >= 6
    assert_clean(output)
