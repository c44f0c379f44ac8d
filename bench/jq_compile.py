"""Benchmark: what compiling and holding 1,000 jq templates costs, and how fast warm renders run.

Each figure is measured in a fresh interpreter (`--one KIND`), so a cold pass really is cold and the RSS
is that of a process holding exactly what the pass left behind:

    compile      jq.compile of each template alone (the old way) against a cold `Renderer.render_many`
                 (how the pipeline renders); CPU ms per template (process time: steadier than the wall
                 clock on a shared machine)
    warm         warm `render_many` renders/s of the simple templates, in-process (CPU time) and through
                 a JqSandbox (wall time: the child's CPU counts too); best of 7 passes
    rss          VmRSS of the process (in-process) and of the sandbox child after `render_many` of N
                 templates, with the bench's 37 and 337 environment variables (a pod with ~40 Service links)
    rss-alone    the same with every template rendered on its own (`Renderer.render` each; the compile
                 cache keeps what its bound lets it)
    held         KiB per compiled program with every template compiled alone, as the engine compiles it
                 (args baked in before; the bare text now), all 1,000 held

    .venv/bin/python -m bench.jq_compile [--count 1000]          all of them, one JSON line
    .venv/bin/python -m bench.jq_compile --one rss --env 337     one figure
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import jq

from bench import render_isolation
from reconciler.core import rendering
from reconciler.core.redaction import Redactor
from reconciler.jq_sandbox import JqSandbox
from reconciler.model import ConnectorSpec, RenderInputs


def service_links(count: int) -> dict[str, str]:
    """What Kubernetes puts in a pod's environment for `count` Services, 8 variables each."""
    env: dict[str, str] = {}
    for i in range(count):
        name, ip = f"SERVICE_{i:03d}", f"10.96.{i // 250}.{i % 250}"
        env |= {
            f"{name}_SERVICE_HOST": ip,
            f"{name}_SERVICE_PORT": "8080",
            f"{name}_SERVICE_PORT_HTTP": "8080",
            f"{name}_PORT": f"tcp://{ip}:8080",
            f"{name}_PORT_8080_TCP": f"tcp://{ip}:8080",
            f"{name}_PORT_8080_TCP_PROTO": "tcp",
            f"{name}_PORT_8080_TCP_PORT": "8080",
            f"{name}_PORT_8080_TCP_ADDR": ip,
        }
    return env


def inputs_with(env_count: int) -> RenderInputs:
    """The bench's inputs with exactly `env_count` environment variables (37 or 337 in the report)."""
    base = {"DEMO_DATA_DIR": "/data", "STAGE": "dev", "DB_PASSWORD": "bench-Secret-1"}
    links = service_links((env_count - len(base)) // 8 + 1)
    env = base | dict(list(links.items())[: env_count - len(base)])
    assert len(env) == env_count
    i = render_isolation.INPUTS
    return RenderInputs(
        env=env, variables=i.variables, secrets=i.secrets, files=i.files, secret_values=i.secret_values
    )


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def compile_alone(program: str, inputs: RenderInputs) -> Any:
    """One template compiled the way `InProcessJq.run` compiles it, outside any cache."""
    if hasattr(rendering, "variable_names"):
        return jq.compile(rendering.wrap_program(program, variables=rendering.variable_names(inputs)))
    # before: the whole inputs compiled into every program as jq arguments
    return jq.compile(rendering.wrap_program(program), args=json.loads(rendering.args_json(inputs)))


def render(renderer: rendering.Renderer, specs: list[ConnectorSpec], *, alone: bool) -> None:
    if alone:
        for spec in specs:
            renderer.render(spec)
    else:
        assert not any(isinstance(r, Exception) for r in renderer.render_many(specs))


def one(kind: str, *, count: int, env_count: int) -> dict[str, Any]:
    inputs = inputs_with(env_count)
    specs = render_isolation.specs(count)
    if kind == "compile":
        arguments = json.loads(rendering.args_json(inputs))
        programs = [rendering.wrap_program(spec.program) for spec in specs]
        started = time.process_time()
        for program in programs:
            jq.compile(program, args=arguments)
        alone = time.process_time() - started
        renderer = rendering.Renderer(inputs, redactor=Redactor(inputs.secret_values))
        started = time.process_time()
        render(renderer, specs, alone=False)
        cold = time.process_time() - started
        warm = float("inf")
        for _ in range(3):
            started = time.process_time()
            render(renderer, specs, alone=False)
            warm = min(warm, time.process_time() - started)
        return {
            "compile_alone_ms_per_template": round(alone / count * 1e3, 3),
            "cold_render_many_s": round(cold, 3),
            "warm_render_many_s": round(warm, 3),
            "compile_in_render_many_ms_per_template": round((cold - warm) / count * 1e3, 3),
        }
    if kind == "warm":
        simple = render_isolation.simple_specs(count)
        out: dict[str, Any] = {}
        with JqSandbox() as sandbox:
            for name, engine in (("in_process", rendering.IN_PROCESS), ("sandbox", sandbox)):
                renderer = rendering.Renderer(inputs, engine=engine, redactor=Redactor(inputs.secret_values))
                render(renderer, simple, alone=False)
                clock = time.process_time if engine is rendering.IN_PROCESS else time.perf_counter
                best = float("inf")
                for _ in range(7):
                    started = clock()
                    render(renderer, simple, alone=False)
                    best = min(best, clock() - started)
                out[f"simple_{name}_warm_per_s"] = round(count / best)
        return out
    if kind == "held":
        before = rss_kib()
        held = [compile_alone(spec.program, inputs) for spec in specs]
        return {f"env{env_count}_held_alone_kib_per_program": round((rss_kib() - before) / len(held), 1)}
    # rss, rss-alone
    alone = kind == "rss-alone"
    before = rss_kib()
    renderer = rendering.Renderer(inputs, redactor=Redactor(inputs.secret_values))
    render(renderer, specs, alone=alone)
    held = rss_kib()
    with JqSandbox() as sandbox:
        sandbox.start()
        assert sandbox.pid is not None
        child_before = rss_kib(sandbox.pid)
        renderer = rendering.Renderer(inputs, engine=sandbox, redactor=Redactor(inputs.secret_values))
        render(renderer, specs, alone=alone)
        child_held = rss_kib(sandbox.pid)
    return {
        f"env{env_count}_rss_mib": round(held / 1024, 1),
        f"env{env_count}_rss_added_kib_per_template": round((held - before) / count, 1),
        f"env{env_count}_sandbox_child_rss_mib": round(child_held / 1024, 1),
        f"env{env_count}_sandbox_child_added_kib_per_template": round((child_held - child_before) / count, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--one", choices=["compile", "warm", "rss", "rss-alone", "held"])
    parser.add_argument("--env", type=int, default=37, help="environment variables (with --one)")
    options = parser.parse_args()
    if options.one:
        print(json.dumps(one(options.one, count=options.count, env_count=options.env)))
        return
    report: dict[str, Any] = {"connectors": options.count}
    runs = [("compile", 37), ("warm", 37), ("rss", 37), ("rss", 337), ("held", 37), ("held", 337)]
    for kind, env_count in runs:
        argv = [sys.executable, "-m", "bench.jq_compile", "--one", kind, "--env", str(env_count)]
        argv += ["--count", str(options.count)]
        done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=os.getcwd())
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        report |= figures
    print(json.dumps(report))


if __name__ == "__main__":
    main()
