"""Runtime checks of a training run (placeholder module filled in by the runtime issue)."""
