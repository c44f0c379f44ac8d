"""An in-memory Kafka Connect for unit tests, served through `httpx.MockTransport`.

It keeps the semantics that matter to the reconciler: values stored as strings with `name` injected,
201 vs 200 on PUT, 409 on POST of an existing name, `expand` dropping connectors without status, pause/
resume/stop target states, and scripted faults (a queue of canned responses for matching requests).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from reconciler.clients.connect import ConnectClient


@dataclass
class FakeConnect:
    version: str = "4.1.1"
    connectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[tuple[str, str, httpx.Response]] = field(default_factory=list)
    no_status: set[str] = field(default_factory=set)

    # --- test helpers ------------------------------------------------------------------------------
    def add(self, name: str, config: dict[str, Any], state: str = "RUNNING") -> None:
        self.connectors[name] = {
            "config": {**{k: str(v) for k, v in config.items()}, "name": name},
            "state": state,
        }

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
        return self._route(request.method, path, request.url.params.get_list("expand"), body)

    def _status(self, name: str) -> dict[str, Any]:
        c = self.connectors[name]
        tasks = [] if c["state"] == "STOPPED" else [{"id": 0, "state": c["state"], "worker_id": "w"}]
        return {
            "name": name,
            "connector": {"state": c["state"], "worker_id": "w"},
            "tasks": tasks,
            "type": "source",
        }

    def _route(self, method: str, path: str, expand: list[str], body: Any) -> httpx.Response:
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
        return error(405, "HTTP 405 Method Not Allowed")
