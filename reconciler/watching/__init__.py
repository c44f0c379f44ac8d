"""The watcher's moving parts: the list/watch stream, the ConfigMap cache, the reconcile loop, health."""
