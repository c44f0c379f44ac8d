"""The `connect-reconciler` executable: parse the command line once and hand it to its entry point.

Edge. `run` goes to the watcher, every other command to the CLI; the entry points never import each
other (an import-linter contract), so this dispatcher is the one place that knows them both.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.entrypoints import cli
from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    import httpx


def run(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    http_hooks: Sequence[Callable[[httpx.Request], Any]] = (),
    transport: httpx.BaseTransport | None = None,
) -> int:
    environ = dict(os.environ if environ is None else environ)
    args = cli.build_parser(environ).parse_args(argv)
    try:
        settings = cli.settings_from_args(args)
    except ReconcilerError as exc:
        print(f"error: {exc}", file=stderr or sys.stderr)
        return 1
    if args.command == "run":
        # Imported here: the kubernetes client costs ~0.25 s of start-up that `plan` and `apply` skip.
        from reconciler.entrypoints import watcher  # noqa: PLC0415

        return watcher.run_watcher(settings, environ)
    return cli.execute(
        args,
        settings,
        environ=environ,
        stdout=stdout or sys.stdout,
        stderr=stderr or sys.stderr,
        http_hooks=http_hooks,
        transport=transport,
    )


def main() -> None:
    raise SystemExit(run())
