"""looplint: find the silent bugs of PyTorch training loops, in source and at run time."""

from __future__ import annotations

__version__ = "0.1.0"
