"""Thin entry points (CLI, shell-operator hook, watcher); all of them call `reconciler.pipeline`."""
