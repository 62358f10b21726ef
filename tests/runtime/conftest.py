"""Shared fixtures for the runtime-checker tests (torch is imported lazily: the suite
must still collect where the `runtime` extra is not installed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    """Make every test deterministic (tiny models, fixed data)."""
    torch: Any = pytest.importorskip("torch")
    torch.manual_seed(0)
    yield
