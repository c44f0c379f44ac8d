"""`python -m reconciler` is the `connect-reconciler` command."""

from reconciler.entrypoints.cli import main

main()
