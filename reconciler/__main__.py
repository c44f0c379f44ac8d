"""`python -m reconciler` is the `connect-reconciler` command."""

from reconciler.entrypoints.main import main

main()
