"""An in-memory Kafka Connect for unit tests, served through `httpx.MockTransport`.

It keeps the semantics that matter to the reconciler: values stored as strings with `name` injected,
201 vs 200 on PUT, 409 on POST of an existing name, `expand` dropping connectors without status, pause/
resume/stop target states, FAILED connectors and tasks with restart (KIP-745's `onlyFailed`), offsets,
and scripted faults (a queue of canned responses for matching requests).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from reconciler.clients.connect import ConnectClient
from reconciler.core.versions import kafka_version


@dataclass
class FakeConnect:
    version: str = "4.1.1"
    connectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[tuple[str, str, httpx.Response]] = field(default_factory=list)
    no_status: set[str] = field(default_factory=set)
    offsets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # GET .../offsets, by connector
    restarts: list[str] = field(default_factory=list)  # "name?query" of every POST .../restart

    # --- test helpers ------------------------------------------------------------------------------
    def add(self, name: str, config: dict[str, Any], state: str = "RUNNING") -> None:
        self.connectors[name] = {
            "config": {**{k: str(v) for k, v in config.items()}, "name": name},
            "state": state,
        }

    def fail_connector(self, name: str) -> None:
        """The Connector instance fails (its task keeps its state)."""
        self.connectors[name]["failed"] = True

    def fail_task(self, name: str) -> None:
        """Its (only) task fails. A restart with includeTasks clears it, and so does a config write (`add`
        builds the entry anew, as the new config's tasks start afresh)."""
        self.connectors[name]["failed_task"] = True

    def fail(self, method: str, path_regex: str, status: int, body: Any = None, *, times: int = 1) -> None:
        content = (
            body if isinstance(body, str) else json.dumps(body or {"error_code": status, "message": "fault"})
        )
        for _ in range(times):
            self.faults.append((method, path_regex, httpx.Response(status, text=content)))

    def writes(self) -> list[str]:
        return [f"{r.method} {unquote(r.url.path)}" for r in self.requests if r.method != "GET"]

    def client(self, *, cluster: str = "default") -> ConnectClient:
        http = httpx.Client(base_url="http://connect.test", transport=httpx.MockTransport(self.handle))
        return ConnectClient(http, cluster=cluster)

    # --- the REST API ------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = unquote(request.url.path)
        for i, (method, rx, response) in enumerate(self.faults):
            if method == request.method and re.fullmatch(rx, path):
                del self.faults[i]
                return response
        body = json.loads(request.content) if request.content else None
        return self._route(
            request.method, path, request.url.params.get_list("expand"), body, request.url.params
        )

    def _status(self, name: str) -> dict[str, Any]:
        c = self.connectors[name]
        # A failed connector or task shows FAILED over its target state until a restart clears it.
        task = "FAILED" if c.get("failed_task") else c["state"]
        tasks = [] if c["state"] == "STOPPED" else [{"id": 0, "state": task, "worker_id": "w"}]
        state = "FAILED" if c.get("failed") else c["state"]
        return {
            "name": name,
            "connector": {"state": state, "worker_id": "w"},
            "tasks": tasks,
            "type": "source",
        }

    def _route(
        self, method: str, path: str, expand: list[str], body: Any, params: httpx.QueryParams | None = None
    ) -> httpx.Response:
        def error(status: int, message: str) -> httpx.Response:
            return httpx.Response(status, json={"error_code": status, "message": message})

        if (method, path) == ("GET", "/"):
            return httpx.Response(200, json={"version": self.version, "commit": "x", "kafka_cluster_id": "k"})
        if (method, path) == ("GET", "/connectors"):
            if not expand:
                return httpx.Response(200, json=sorted(self.connectors))
            out = {}
            for name, c in self.connectors.items():
                if name in self.no_status:
                    continue  # Connect drops the whole entry when one expansion fails
                entry: dict[str, Any] = {}
                if "info" in expand:
                    entry["info"] = {"name": name, "config": c["config"], "tasks": [], "type": "source"}
                if "status" in expand:
                    entry["status"] = self._status(name)
                out[name] = entry
            return httpx.Response(200, json=out)
        if (method, path) == ("POST", "/connectors"):
            name = body["name"]
            if name in self.connectors:
                return error(409, f"Connector {name} already exists")
            self.add(name, body["config"], state=(body.get("initial_state") or "RUNNING").upper())
            return httpx.Response(
                201, json={"name": name, "config": self.connectors[name]["config"], "tasks": []}
            )
        if m := re.fullmatch(r"/connector-plugins/([^/]+)/config/validate", path):
            errors = [] if "bad" not in body else ["bad is not allowed"]
            configs = [
                {"definition": {}, "value": {"name": k, "value": v, "errors": errors if k == "bad" else []}}
                for k, v in body.items()
            ]
            return httpx.Response(
                200, json={"name": m.group(1), "error_count": len(errors), "configs": configs}
            )
        m = re.fullmatch(r"/connectors/([^/]+)(/[a-z]+)?", path)
        if not m:
            return error(404, "HTTP 404 Not Found")
        name, sub = m.group(1), m.group(2) or ""
        if (method, sub) == ("PUT", "/config"):
            created = name not in self.connectors
            state = "RUNNING" if created else self.connectors[name]["state"]
            self.add(name, body, state=state)
            return httpx.Response(
                201 if created else 200, json={"name": name, "config": self.connectors[name]["config"]}
            )
        if name not in self.connectors:
            return error(404, f"Connector {name} not found")
        c = self.connectors[name]
        match (method, sub):
            case ("GET", "/config"):
                return httpx.Response(200, json=c["config"])
            case ("GET", "/status"):
                return (
                    error(404, f"No status found for connector {name}")
                    if name in self.no_status
                    else httpx.Response(200, json=self._status(name))
                )
            case ("PUT", "/pause"):
                c["state"] = "PAUSED"
                return httpx.Response(202)
            case ("PUT", "/resume"):
                c["state"] = "RUNNING"
                return httpx.Response(202)
            case ("PUT", "/stop"):
                c["state"] = "STOPPED"
                return httpx.Response(204)
            case ("DELETE", ""):
                del self.connectors[name]
                return httpx.Response(204)
            case ("POST", "/restart"):
                return self._restart(name, params or httpx.QueryParams())
            case ("GET", "/offsets"):  # KIP-875 (3.5); before it, JAX-RS's 404 for an unknown path
                if self._kafka() < (3, 5):
                    return error(404, "HTTP 404 Not Found")
                return httpx.Response(200, json={"offsets": self.offsets.get(name, [])})
        return error(405, "HTTP 405 Method Not Allowed")

    def _kafka(self) -> tuple[int, int]:
        return kafka_version(self.version) or (0, 0)

    def _restart(self, name: str, params: httpx.QueryParams) -> httpx.Response:
        """KIP-745 (3.0): with includeTasks/onlyFailed, 202 and the planned states; without, or on older
        workers (which ignore the parameters), the Connector instance only and 204."""
        c = self.connectors[name]
        self.restarts.append(f"{name}?{params}" if params else name)
        kip745 = self._kafka() >= (3, 0) and ("includeTasks" in params or "onlyFailed" in params)
        only_failed = kip745 and params.get("onlyFailed") == "true"
        include_tasks = kip745 and params.get("includeTasks") == "true"
        if c.get("failed") or not only_failed:
            c["failed"] = False
        if include_tasks:
            c["failed_task"] = False
        if not kip745:
            return httpx.Response(204)
        return httpx.Response(202, json=self._status(name))
