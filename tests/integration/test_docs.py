"""The docs run: every `sh runnable` block of README.md and docs/**/*.md, against the session's real Kafka
Connect worker and kube-apiserver, and every other shell block marked `sh norun <reason>`.

The contract (tests/docs_blocks.py has the marker policy): per Markdown file, its runnable blocks run in
document order, each as `bash -euo pipefail -c BLOCK`, in a scratch copy of the repository made once for the
file; CONNECT_URL, KUBECONFIG and NAMESPACE (unique to the file, not yet created) are set, and PATH starts with
the venv's bin and kubectl's directory. After each file the connectors it left on the worker are deleted and,
if it ran `make demo`, `make demo-stop` stops the demo's own Kafka. No block's output may contain a password
the docs use (DOC_SECRET_VALUES).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from reconciler.entrypoints.flags import ENV_PREFIX, FLAGS
from tests.docs_blocks import Block, Kind, Verdict, classify_document
from tests.harness.apiserver_kit import ApiServerKit
from tests.integration.conftest import SUMMARY

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"
MAKE_TIMEOUT_S = 600.0  # `make demo` may start Kafka and Connect from cold
BLOCK_TIMEOUT_S = 120.0
TAIL_LINES = 40

# The fake passwords and tokens the docs' samples and blocks use. Each is asserted absent from every output a
# block prints: a doc that shows one has shown a secret. Add a value here when a doc starts using it.
DOC_SECRET_VALUES: tuple[str, ...] = (
    "fake-password-docs",
    "fake-cdc-password-docs",
    "fake-camel-secret-docs",
    "not-a-real-password",
    "s3cret-one",
    "s3cret-two",
)

# A user's shell does not have the test process's reconciler settings or make's state: a block must set what
# it needs. (CONNECT_RECONCILER_CACHE and _KAFKA_VERSION are the harness's, which `make demo` shares.)
_DROPPED_VARS = frozenset(
    {f.env for f in FLAGS}
    | {ENV_PREFIX + "PATHS", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "KUBECONFIG"}
)
_MAKE = re.compile(r"(?:^|[;&|(]|\$\()\s*make\b", re.MULTILINE)
_MAKE_DEMO = re.compile(r"(?:^|[;&|(]|\$\()\s*make\s+(?:-\S+\s+)*demo(?=\s|$|[;&|)])", re.MULTILINE)


def _markdown_files() -> list[Path]:
    docs = ROOT / "docs"
    found = sorted(docs.rglob("*.md")) if docs.is_dir() else []
    return ([ROOT / "README.md"] if (ROOT / "README.md").exists() else []) + found


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# Read at collection: the files with runnable blocks become the parameters of test_doc_runs.
VERDICTS: dict[str, list[Verdict]] = {
    _rel(p): classify_document(p.read_text(encoding="utf-8"), _rel(p)) for p in _markdown_files()
}
RUNNABLE: dict[str, list[Block]] = {
    doc: [v.block for v in verdicts if v.kind is Kind.RUNNABLE] for doc, verdicts in VERDICTS.items()
}
FILES_WITH_BLOCKS = [doc for doc, blocks in RUNNABLE.items() if blocks]


def test_every_shell_block_is_marked() -> None:
    """`sh runnable` or `sh norun <reason>`; the run's summary lists the norun blocks and why."""
    verdicts = [v for vs in VERDICTS.values() for v in vs]
    norun = [v for v in verdicts if v.kind is Kind.NORUN]
    violations = [v for v in verdicts if v.kind is Kind.VIOLATION]
    runnable = sum(v.kind is Kind.RUNNABLE for v in verdicts)
    SUMMARY.append(
        f"docs: {runnable} runnable blocks in {len(FILES_WITH_BLOCKS)} of {len(VERDICTS)} Markdown files, "
        f"{len(norun)} norun:"
    )
    SUMMARY.extend(f"  {v.block.where}: norun {v.reason}" for v in norun)
    assert VERDICTS, "no README.md or docs/*.md found"
    if violations:
        pytest.fail(
            "shell blocks breaking the docs contract:\n"
            + "\n".join(f"  {v.block.where}: {v.reason}" for v in violations),
            pytrace=False,
        )


@dataclass(frozen=True, slots=True)
class BlockRun:
    code: int | None  # None: killed at the timeout
    output: str  # stdout and stderr, interleaved as printed
    seconds: float
    pgid: int


def _tracked_files() -> list[str]:
    """What a clone would have: tracked files plus new ones not yet committed (but not ignored ones), so a
    doc can be run before its samples are committed; in CI's fresh clone the two are the same."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in out.split("\0") if name})


def _scratch_copy(dest: Path) -> None:
    installed = VENV / ".installed"
    if not installed.exists():
        pytest.fail(f"{installed} is missing: run `make venv` first (a block's make would rebuild the venv)")
    for name in _tracked_files():
        src = ROOT / name
        if not src.is_file() and not src.is_symlink():
            continue  # deleted in the work tree, or a submodule
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)  # copy2: make compares mtimes
    # The blocks share the repository's venv (VENV=...). Were pyproject.toml newer than the venv's stamp,
    # `make demo` would reinstall that shared venv from this scratch copy, pointing its editable install at
    # a directory about to be deleted: the copy's pyproject.toml is never newer than the stamp.
    stamp = installed.stat().st_mtime
    pyproject = dest / "pyproject.toml"
    if pyproject.stat().st_mtime > stamp:
        os.utime(pyproject, (stamp, stamp))


def _slug(doc: str) -> str:
    name = doc.removeprefix("docs/").removesuffix(".md").lower()
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40] or "doc"


def _block_env(
    *, connect_url: str, apiserver: ApiServerKit, namespace: str, demo_dir: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_VARS and not k.startswith("PYTEST_")}
    env.update(
        PATH=os.pathsep.join([str(VENV / "bin"), str(apiserver.kubectl_path.parent), os.environ["PATH"]]),
        CONNECT_URL=connect_url,
        KUBECONFIG=str(apiserver.kubeconfig_path),
        NAMESPACE=namespace,
        VENV=str(VENV),  # make uses the existing venv, never one of its own in the scratch copy
        DEMO_DIR=str(demo_dir),  # the demo's Kafka and state live in this test's tmp dir, not ~/.cache
    )
    return env


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> BlockRun:
    """Output goes to a file, not a pipe: a block that leaves a process running in the background must not
    keep its run waiting for the pipe to close."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed whole at a timeout or after the file
        )
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            code = None
    output = log.read_bytes().decode("utf-8", errors="replace")
    return BlockRun(code=code, output=output, seconds=time.monotonic() - started, pgid=proc.pid)


def _kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _scrub(text: str) -> str:
    for value in DOC_SECRET_VALUES:
        text = text.replace(value, "<a DOC_SECRET_VALUES password>")
    return text


def _tail(output: str) -> str:
    lines = output.splitlines()[-TAIL_LINES:]
    return "\n".join(f"    | {line}" for line in lines) or "    | (no output)"


def _failure(block: Block, run: BlockRun, timeout: float) -> str:
    status = f"timed out after {timeout:.0f} s" if run.code is None else f"exited {run.code}"
    command = "\n".join(f"    > {line}" for line in block.body.rstrip("\n").splitlines())
    return _scrub(
        f"{block.where}: the block {status} ({run.seconds:.1f} s):\n{command}\n"
        f"  last {TAIL_LINES} lines of its stdout/stderr:\n{_tail(run.output)}"
    )


def _connectors(http: httpx.Client) -> set[str]:
    response = http.get("/connectors")
    response.raise_for_status()
    return set(response.json())


@pytest.fixture
def worker(connect_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=connect_url, timeout=30) as http:
        yield http


@pytest.mark.parametrize("doc", FILES_WITH_BLOCKS)
def test_doc_runs(
    doc: str, tmp_path: Path, connect_url: str, apiserver: ApiServerKit, worker: httpx.Client
) -> None:
    scratch, logs = tmp_path / "repo", tmp_path / "logs"
    scratch.mkdir()
    logs.mkdir()
    _scratch_copy(scratch)
    namespace = f"docs-{_slug(doc)}-{secrets.token_hex(3)}"
    env = _block_env(
        connect_url=connect_url, apiserver=apiserver, namespace=namespace, demo_dir=tmp_path / "demo"
    )
    before = _connectors(worker)
    started, ran, demo, groups = time.monotonic(), 0, False, []
    cleanup: list[str] = []
    try:
        for block in RUNNABLE[doc]:
            # Marked before the run: a `make demo` that fails halfway may have started Kafka all the same.
            demo = demo or bool(_MAKE_DEMO.search(block.body))
            timeout = MAKE_TIMEOUT_S if _MAKE.search(block.body) else BLOCK_TIMEOUT_S
            run = _run(
                ["bash", "-euo", "pipefail", "-c", block.body],
                cwd=scratch,
                env=env,
                log=logs / f"line-{block.line}.log",
                timeout=timeout,
            )
            groups.append(run.pgid)
            ran += 1
            # pytest.fail, not assert: assert's introspection would print the raw, unscrubbed output.
            if run.code != 0:
                pytest.fail(_failure(block, run, timeout), pytrace=False)
            leaked = [i for i, value in enumerate(DOC_SECRET_VALUES) if value in run.output]
            if leaked:
                pytest.fail(
                    f"{block.where}: its output shows DOC_SECRET_VALUES{leaked} (a password the docs use)",
                    pytrace=False,
                )
    finally:
        if demo:
            stop = _run(
                ["make", "demo-stop"], cwd=scratch, env=env, log=logs / "demo-stop.log", timeout=120
            )
            if stop.code != 0:
                cleanup.append(f"make demo-stop exited {stop.code}:\n{_tail(_scrub(stop.output))}")
        for pgid in groups:
            # What a block left in the background (a watcher, a port-forward) ends with its file.
            _kill_group(pgid)
        left = sorted(_connectors(worker) - before)
        for name in left:
            response = worker.delete(f"/connectors/{quote(name, safe='')}")
            if response.status_code not in (204, 404):
                cleanup.append(f"DELETE connector {name}: HTTP {response.status_code}")
        SUMMARY.append(
            f"docs: {doc}: {ran} of {len(RUNNABLE[doc])} blocks ran in {time.monotonic() - started:.0f} s"
            f"{' (with make demo)' if demo else ''}, {len(left)} connectors deleted after"
        )
    assert not cleanup, f"{doc}: cleaning up after the blocks failed:\n" + "\n".join(cleanup)


def test_runner_kills_a_timed_out_block_and_its_children(tmp_path: Path) -> None:
    """A block that hangs (or leaves a child behind) is killed with its whole process group."""
    marker = tmp_path / "child-alive"
    script = f"(sleep 30; touch {marker}) & sleep 30"
    run = _run(["bash", "-c", script], cwd=tmp_path, env=dict(os.environ), log=tmp_path / "log", timeout=1)
    assert run.code is None
    assert run.seconds < 15
    with suppress(ProcessLookupError):
        os.killpg(run.pgid, 0)
        pytest.fail("a process of the timed-out block is still running")
    assert not marker.exists()
