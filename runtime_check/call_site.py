"""Where in the user's code a runtime finding happened: the file and line of the call.

A hook fires deep inside torch (`optimizer.step` → the step wrapper → the hook),
so the user's line is the first frame on the stack outside torch and looplint.
Frames of installed libraries (site-packages: Lightning, transformers) are
skipped too when a frame of the user's own code lies further out, so a
`trainer.fit(...)` line wins over the library's internal `optimizer.step()`.
The stack is walked only when a finding is first recorded, never per step.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

_LIBRARY_MARKERS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_MAX_FRAMES = 200


@dataclass(frozen=True, slots=True)
class CallSite:
    """A file and line in the user's code (`str()` gives `path:line`, relative when short)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{_display(self.file)}:{self.line}"


def _display(file: str) -> str:
    try:
        relative = os.path.relpath(file)
    except ValueError:  # another drive (Windows)
        return file
    return file if relative.startswith(os.pardir) else relative


@functools.lru_cache(maxsize=1)
def _package_dirs() -> tuple[str, ...]:
    """torch's and looplint's folders (torch is loaded once a finding exists)."""
    files = [__file__, getattr(sys.modules.get("looplint"), "__file__", None) or __file__]
    torch = sys.modules.get("torch")
    if torch is not None and torch.__file__:
        files.append(torch.__file__)
    return tuple(str(Path(file).resolve().parent) + os.sep for file in files)


@functools.lru_cache(maxsize=1024)
def _skipped(file: str) -> bool:
    if file.startswith("<frozen"):
        return True
    try:
        resolved = str(Path(file).resolve())
    except OSError:
        return False
    return resolved.startswith(_package_dirs())


def is_own_file(file: str) -> bool:
    """Whether `file` is torch's, looplint's or Python's own (never the user's line)."""
    return _skipped(file)


def is_library_file(file: str) -> bool:
    """Whether `file` belongs to an installed library (site-packages / dist-packages)."""
    return any(marker in file for marker in _LIBRARY_MARKERS)


def user_call_site(skip: int = 1) -> CallSite | None:
    """The innermost frame of the user's own code on the current stack, if any.

    Falls back to the innermost frame outside torch and looplint (a library's)
    when no frame of the user's own code is found.
    """
    frame: FrameType | None = sys._getframe(skip)
    fallback: CallSite | None = None
    try:
        for _ in range(_MAX_FRAMES):
            if frame is None:
                break
            file = frame.f_code.co_filename
            if not _skipped(file):
                site = CallSite(file, frame.f_lineno or 0)
                if not any(marker in file for marker in _LIBRARY_MARKERS):
                    return site
                if fallback is None:
                    fallback = site
            frame = frame.f_back
    finally:
        del frame
    return fallback
