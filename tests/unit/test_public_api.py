"""The package's public surface is exactly __all__ (the httpx way; ruff RUF022 keeps it sorted)."""

from __future__ import annotations

import subprocess
import sys

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


def test_the_cli_does_not_import_the_kubernetes_client_until_it_needs_it() -> None:
    """~0.25 s of start-up: `plan` and `apply` without a ledger never touch Kubernetes."""
    code = "import sys, reconciler.entrypoints.main; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]
