"""Reading files into Python source text, whatever their encoding or format."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tokenize
from codecs import BOM_UTF8
from dataclasses import dataclass
from pathlib import Path

from looplint.errors import SourceError
from looplint.files.notebook import NotebookProgram, notebook_program

MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file's text as Python source; `notebook` maps lines back to cells."""

    path: str
    text: str
    notebook: NotebookProgram | None = None
    fixable: bool = True
    """Whether fixed text can be written back (plain UTF-8 `.py`, or a notebook without a
    byte-order mark, whose fixes go back into its cells)."""

    def line(self, number: int) -> str:
        """The 1-based program line `number` (empty when out of range)."""
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""


def decode_python(data: bytes) -> str:
    """Decode source bytes as Python does: BOM, PEP 263 coding cookie, else UTF-8."""
    if b"\x00" in data:
        raise SourceError("binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            raise SourceError(
                f"cannot decode as UTF-8 and no coding declaration says otherwise: {decode_error}"
            ) from None
        raise SourceError(f"bad encoding declaration: {error.msg}") from None
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        raise SourceError(f"cannot decode as {encoding}: {error}") from None
    return text.removeprefix("\ufeff")


def read_bytes(path: str) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes and its stat (taken first); anything else is a `SourceError`."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise SourceError(f"cannot read: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SourceError("is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise SourceError("not a regular file (FIFO, socket or device); skipped")
    if info.st_size > MAX_FILE_BYTES:
        raise SourceError(f"file too large ({info.st_size} bytes > {MAX_FILE_BYTES})")
    try:
        with open(path, "rb") as handle:
            return handle.read(), info
    except OSError as error:
        raise SourceError(f"cannot read: {error.strerror or error}") from None


def source_from_bytes(path: str, data: bytes) -> SourceFile:
    """Turn file contents into a `SourceFile`, by extension."""
    if Path(path).suffix == ".ipynb":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise SourceError(f"notebook is not UTF-8: {error}") from None
        program = notebook_program(text)
        # A fix is written back into the cells (`fixed_notebook`); a byte-order mark
        # would not survive that.
        return SourceFile(path, program.source, program, fixable=not data.startswith(BOM_UTF8))
    text = decode_python(data)
    return SourceFile(path, text, fixable=text.encode("utf-8") == data)


def read_source(path: str) -> SourceFile:
    """Read and decode one `.py` or `.ipynb` file."""
    return source_from_bytes(path, read_bytes(path)[0])


def content_digest(data: bytes) -> str:
    """The hash that decides whether a cached result still holds."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class FileStamp:
    """How a file looked when it was read: cheap to compare, then confirmed by content."""

    size: int
    mtime_ns: int
    digest: str
