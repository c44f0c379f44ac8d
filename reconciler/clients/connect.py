"""Kafka Connect REST client: one method per endpoint the reconciler uses, errors mapped to `errors.py`.

I/O edge. Takes an `httpx.Client` so tests inject `httpx.MockTransport` (the `responses` library cannot
intercept httpx). No retries here: the caller wraps calls in `retrying.retrying()` so one policy rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.core.observation import live_from_expanded, live_from_parts
from reconciler.errors import (
    ConnectApiError,
    ConnectConflict,
    ConnectNotFound,
    ConnectRequestInvalid,
    ConnectRequestTimeout,
    ConnectUnavailable,
)
from reconciler.model import DEFAULT_CLUSTER, LiveConnector

# Connect's own request timeout is 90 s; a write may legitimately take that long (validation, rebalance).
WRITE_TIMEOUT_S = 100.0
READ_TIMEOUT_S = 10.0


def _path(name: str, suffix: str = "") -> str:
    return f"/connectors/{quote(name, safe='')}{suffix}"


# A 500 whose message reports a request Connect can never accept: retrying sends the same bytes again.
# Connect's ConnectExceptionMapper answers 500, with the exception's own message, for any exception that
# carries no status, so these are the exceptions' texts (apache/kafka 4.0 sources):
# - Jackson reading the body (RestServer registers no Jackson exception mapper): "Unrecognized field "x"
#   (class ...), not marked as ignorable", "Cannot deserialize value of type ...", "Cannot construct
#   instance of ...", and the parser's "Unexpected character" / "Unrecognized token";
# - isolation/Plugins.java: "Failed to find any class that implements Connector and which name matches
#   X, available connectors are: ..." (also Converter, HeaderConverter, ConfigProvider) and "More than one
#   connector matches alias X"; the validate endpoint wraps it, "org.apache.kafka.connect.errors.
#   ConnectException: Failed to find any class ...";
# - AbstractHerder.validateConnectorConfig: "Connector config {...} contains no connector type" (a 500
#   from the validate endpoint, which wraps it in an ExecutionException);
# - KafkaProducer.ensureValidRecordSize: "The message is N bytes when serialized which is larger than M,
#   which is the value of the max.request.size configuration." (RecordTooLargeException). Kafka's own
#   config-topic write reports only "Error writing connector configuration to Kafka", which a broker
#   outage gives too, so that one stays retryable; rendering refuses configs that large beforehand.
_PERMANENT_500 = re.compile(
    r"Unrecognized field|not marked as ignorable|Cannot deserialize|Cannot construct instance|"
    r"Unexpected character|Unrecognized token|JsonParseException|JsonMappingException|"
    r"Failed to find any class that implements|More than one connector matches alias|"
    r"contains no connector type|RecordTooLargeException|bytes when serialized which is larger than",
    re.IGNORECASE,
)
# Connect's messages can quote whole configs; an error line stays readable at this length.
MAX_MESSAGE_CHARS = 500
# Plugins.java lists every installed plugin's PluginDesc after the class it could not find: hundreds of
# characters that hide the one fact that matters, so the list becomes a pointer to where it can be read.
_MISSING_PLUGIN = re.compile(
    r"(Failed to find any class that implements \w+ and which name matches \S+?),? available \w+ are: .*"
)
# JAX-RS's message for a path no resource matches; Connect's mapper wraps it in its JSON error body.
_UNKNOWN_PATH = ": HTTP 404 Not Found"
# Transport failures before the request was sent: the write certainly did not happen.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _connect_body(response: httpx.Response) -> Mapping[str, Any] | None:
    """Connect's own error body, `{"error_code": int, "message": str}`; None for anybody else's answer."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, Mapping) and isinstance(body.get("error_code"), int) and "message" in body:
        return body
    return None


def _message(response: httpx.Response, body: Mapping[str, Any] | None) -> str:
    """Connect's message on one line, at most MAX_MESSAGE_CHARS (plus `...`).

    No redactor here: the caller scrubs, and `Redactor.scrub` knows both forms this produces — a
    multi-line secret with its line breaks collapsed to spaces, and a secret cut off by the length
    limit, which the trailing `...` marks. The cut falls between words where it can, so a quoted value
    without spaces is kept or dropped whole."""
    text = str(body["message"]) if body is not None else response.text.strip() or response.reason_phrase
    text = " ".join(text.split())
    text = _MISSING_PLUGIN.sub(
        r"\1: the plugin is not installed on this worker (GET /connector-plugins)", text
    )
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    cut = text.rfind(" ", 0, MAX_MESSAGE_CHARS + 1)
    if cut < MAX_MESSAGE_CHARS // 2:  # one very long word (a collapsed config): cut inside it
        cut = MAX_MESSAGE_CHARS
    return text[:cut] + "..."


def error_for(response: httpx.Response) -> ConnectApiError:
    method, path, status = response.request.method, response.request.url.path, response.status_code
    body = _connect_body(response)
    text = f"{method} {path}: HTTP {status}: {_message(response, body)}"
    kwargs: dict[str, Any] = {"status": status, "method": method, "path": path}
    if status == 404:
        if body is not None:
            return ConnectNotFound(text, **kwargs)
        # A starting worker answers 404 to everything before its REST resources exist, and does nothing.
        return ConnectUnavailable(f"{text} (not Kafka Connect's answer: worker starting?)", **kwargs)
    if status == 409:
        return ConnectConflict(text, **kwargs)
    if status == 500 and "request timed out" in text.lower():
        return ConnectRequestTimeout(text, **kwargs)
    if status == 500 and _PERMANENT_500.search(text):
        return ConnectRequestInvalid(text, **kwargs)
    if status in (502, 503, 504) and body is None:
        # A proxy's answer: 502/504 may come after the request reached Connect, 503 before.
        return ConnectUnavailable(text, outcome_unknown=status != 503, **kwargs)
    return ConnectApiError(text, **kwargs)


class ConnectClient:
    def __init__(self, http: httpx.Client, *, cluster: str = DEFAULT_CLUSTER) -> None:
        self.http = http
        self.cluster = cluster
        self._version: str | None = None

    def _request(
        self, method: str, path: str, *, json: Any = None, params: Any = None, write: bool = False
    ) -> httpx.Response:
        timeout = httpx.Timeout(READ_TIMEOUT_S, read=WRITE_TIMEOUT_S if write else READ_TIMEOUT_S)
        try:
            response = self.http.request(method, path, json=json, params=params, timeout=timeout)
        except httpx.TransportError as exc:
            where = f"{self.http.base_url}".rstrip("/")
            raise ConnectUnavailable(
                f"{method} {path}: cannot reach Kafka Connect at {where}: {type(exc).__name__}: {exc}",
                method=method,
                path=path,
                outcome_unknown=not isinstance(exc, _NOT_SENT),
            ) from None
        if response.is_error:
            raise error_for(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json() if response.content else None
        except ValueError:
            raise ConnectApiError(
                f"{method} {path}: HTTP {response.status_code} with a body that is not JSON",
                status=response.status_code,
                method=method,
                path=path,
            ) from None

    def close(self) -> None:
        self.http.close()

    # --- reads -------------------------------------------------------------------------------------
    def version(self) -> str | None:
        if self._version is None:
            info = self._json("GET", "/")
            self._version = str(info.get("version")) if isinstance(info, Mapping) else ""
        return self._version or None

    def list_names(self) -> list[str]:
        names = self._json("GET", "/connectors")
        return [str(n) for n in names] if isinstance(names, list) else []

    def list_expanded(self) -> dict[str, LiveConnector]:
        payload = self._json("GET", "/connectors", params=[("expand", "info"), ("expand", "status")])
        return live_from_expanded(payload)

    def get_config(self, name: str) -> dict[str, str]:
        config = self._json("GET", _path(name, "/config"))
        return {str(k): str(v) for k, v in config.items()} if isinstance(config, Mapping) else {}

    def get_status(self, name: str) -> Any:
        return self._json("GET", _path(name, "/status"))

    def get_connector(self, name: str) -> LiveConnector | None:
        """One connector by name (for those the expanded listing left out); None when it does not exist."""
        try:
            config = self.get_config(name)
        except ConnectNotFound:
            return None
        try:
            status = self.get_status(name)
        except ConnectNotFound:
            status = None  # no status record yet, typical right after a create
        return live_from_parts(name, config, status)

    def offsets(self, name: str) -> Mapping[str, Any] | None:
        """`GET /connectors/{name}/offsets` (Kafka >= 3.5, KIP-875): `{"offsets": [{"partition", "offset"}]}`.

        None when the worker has no such endpoint: JAX-RS's own 404 for an unknown path (Connect's JSON,
        with the message "HTTP 404 Not Found") or a 405. Connect's 404 naming the connector is
        ConnectNotFound; a 404 that is not Connect's JSON stays ConnectUnavailable (a starting worker)."""
        try:
            body = self._json("GET", _path(name, "/offsets"))
        except ConnectApiError as exc:
            # The whole message, not a substring: a connector may be named "HTTP 404 Not Found".
            if exc.status == 405 or (isinstance(exc, ConnectNotFound) and str(exc).endswith(_UNKNOWN_PATH)):
                return None
            raise
        return body if isinstance(body, Mapping) else {}

    def validate(self, config: Mapping[str, str]) -> Any:
        plugin = config.get("connector.class", "")
        path = f"/connector-plugins/{quote(plugin.rsplit('.', 1)[-1], safe='')}/config/validate"
        return self._json("PUT", path, json=dict(config), write=True)

    # --- writes ------------------------------------------------------------------------------------
    def create(self, name: str, config: Mapping[str, str], *, initial_state: str | None = None) -> None:
        body: dict[str, Any] = {"name": name, "config": dict(config)}
        if initial_state is not None:
            body["initial_state"] = initial_state.upper()
        self._request("POST", "/connectors", json=body, write=True)

    def put_config(self, name: str, config: Mapping[str, str]) -> bool:
        """Create or update; True when Connect created it (201)."""
        return self._request("PUT", _path(name, "/config"), json=dict(config), write=True).status_code == 201

    def pause(self, name: str) -> None:
        self._request("PUT", _path(name, "/pause"), write=True)

    def resume(self, name: str) -> None:
        self._request("PUT", _path(name, "/resume"), write=True)

    def stop(self, name: str) -> None:
        self._request("PUT", _path(name, "/stop"), write=True)

    def restart(self, name: str) -> None:
        """Restart the FAILED connector instance and tasks only (Kafka >= 3.0, KIP-745): 202 with the planned
        states (the restart runs asynchronously), 200/204 from workers that answer otherwise. Not
        idempotent-harmless: a resend restarts again, so the executor does not resend after an unknown
        outcome."""
        self._request(
            "POST", _path(name, "/restart"), params={"includeTasks": "true", "onlyFailed": "true"}, write=True
        )

    def delete(self, name: str) -> None:
        try:
            self._request("DELETE", _path(name), write=True)
        except ConnectNotFound:
            return  # Connect's own 404: already gone, the desired outcome (any other 404 is raised)
