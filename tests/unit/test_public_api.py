"""The package's public surface is exactly __all__ (the httpx way; ruff RUF022 keeps it sorted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import reconciler


def test_all_public_names_are_exported() -> None:
    assert dir(reconciler) == sorted(reconciler.__all__)
    for name in reconciler.__all__:
        assert getattr(reconciler, name) is not None
    with pytest.raises(AttributeError):
        _ = reconciler.not_a_public_name  # type: ignore[attr-defined]


def test_importing_one_module_does_not_import_the_pipeline() -> None:
    """The jq sandbox's child imports `reconciler.core.rendering` only: it must start fast."""
    code = "import sys, reconciler.core.rendering; print('reconciler.pipeline' in sys.modules, 'httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# What `--help`, a bad flag or a bad setting never needs: ~0.15 s of start-up (httpx alone ~0.05-0.1 s).
HEAVY = (
    "httpx",
    "structlog",
    "yaml",
    "jq",
    "tenacity",
    "kubernetes",
    "reconciler.pipeline",
    "reconciler.runtime",
)


@pytest.mark.parametrize("argv", [["--help"], ["render", "--help"], ["plan", "--render-timeout", "x"]])
def test_the_cli_imports_nothing_heavy_before_a_command_runs(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from reconciler.entrypoints.main import run\n"
        "try:\n"
        f"    run({argv!r}, environ={{}})\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code)\n"
        f"print(*[m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    exit_line, heavy = done.stdout.splitlines()[-2:]
    assert exit_line in ("exit 0", "exit 2"), done.stdout  # argparse: 0 for help, 2 for a bad flag
    assert heavy == ""


def test_a_command_that_runs_imports_what_it_needs(tmp_path: Path) -> None:
    """The lazy imports are in place: `render` of an empty directory still works."""
    code = (
        "import sys\n"
        "from reconciler.entrypoints.main import run\n"
        f"print('exit', run(['render', {str(tmp_path)!r}], environ={{}}))\n"
        "print('reconciler.pipeline' in sys.modules, 'kubernetes' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-2:] == ["exit 0", "True False"]


def test_the_cli_does_not_import_the_kubernetes_client_until_it_needs_it() -> None:
    """~0.25 s of start-up: `plan` and `apply` without a ledger never touch Kubernetes."""
    code = "import sys, reconciler.entrypoints.main; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]
