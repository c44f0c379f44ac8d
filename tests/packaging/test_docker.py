"""docker/: no container engine runs here, so the Dockerfiles are linted (hadolint, from PyPI) and the
steps they perform are replayed: exactly the files they COPY, installed into a clean virtualenv the
way their RUN line does, then the image's entry point and hook are run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.shell-operator"]


def copied_sources(dockerfile: Path) -> list[str]:
    sources: list[str] = []
    for line in dockerfile.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            sources.extend(parts[1:-1])
    return sources


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the images contain: only the COPY'd files, installed into a fresh venv with the RUN's pip line."""
    build = tmp_path_factory.mktemp("image")
    src = build / "src"
    src.mkdir()
    for name in sorted({s for d in DOCKERFILES for s in copied_sources(d)}):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, src / name)  # type: ignore[operator]
    venv = build / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-compile", "."],
        cwd=src,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return build


def test_copy_set_is_what_the_build_needs() -> None:
    assert sorted(copied_sources(DOCKERFILES[0])) == ["README.md", "pyproject.toml", "reconciler"]
    assert "hooks" in copied_sources(DOCKERFILES[1])


def test_image_entry_point_runs(image_root: Path) -> None:
    exe = image_root / "venv" / "bin" / "connect-reconciler"
    assert "run" in subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    rendered = subprocess.run(
        [
            str(exe),
            "render",
            *sorted(str(p) for p in (ROOT / "configmaps").glob("*.yaml")),
            "--properties-dir",
            str(ROOT / "configmaps/inputs/properties"),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DEMO_DATA_DIR": "/data"},
        cwd=image_root,
    )
    assert {c["name"] for c in json.loads(rendered.stdout)} >= {"demo-file-source", "demo-file-sink"}


def test_hook_runs_with_the_image_python(image_root: Path) -> None:
    env = {**os.environ, "PATH": f"{image_root / 'venv' / 'bin'}:{os.environ['PATH']}"}
    result = subprocess.run(
        [str(image_root / "src" / "hooks" / "connect-reconciler"), "--config"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=image_root,
    )
    assert json.loads(result.stdout)["kubernetes"][0]["kind"] == "ConfigMap"
