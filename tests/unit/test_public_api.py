"""The package's public surface is exactly __all__ (the httpx way; ruff RUF022 keeps it sorted)."""

from __future__ import annotations

import reconciler


def test_all_public_names_are_exported() -> None:
    public = set(
        (
            n
            for n in vars(reconciler)
            if not n.startswith("_")
            and n
            not in {
                "core",
                "model",
                "pipeline",
                "clients",
                "errors",
                "retrying",
                "executor",
                "logs",
                "report",
                "entrypoints",
                "watching",
                "settings",
                "runtime",
                "clock",
            }
        ),
    )
    assert set(reconciler.__all__) == public and len(reconciler.__all__) == len(public)
    for name in reconciler.__all__:
        assert getattr(reconciler, name) is not None
