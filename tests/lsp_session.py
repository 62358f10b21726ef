"""A minimal Language Server Protocol client: JSON-RPC over a subprocess's stdio.

Written out (Content-Length framing, one reader thread) rather than borrowed from
pygls, so the tests see the bytes an editor would and share no code with the server.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

Message = dict[str, Any]
WAIT_S = 30.0


class ProtocolError(AssertionError):
    """The server broke the protocol, answered with an error, or never answered."""


def _read_message(stream: IO[bytes]) -> Message | None:
    """One framed message, or None at end of stream."""
    length = None
    while True:
        header = stream.readline()
        if not header:
            return None
        if header in (b"\r\n", b"\n"):
            break
        name, _, value = header.decode("ascii").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise ProtocolError("a message without Content-Length")
    body = stream.read(length)
    message: Message = json.loads(body.decode("utf-8"))
    return message


class LspSession:
    """A running server and what it sent, message by message."""

    def __init__(self, command: Sequence[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._incoming: queue.Queue[Message | None] = queue.Queue()
        self._next_id = 0
        self.notifications: list[Message] = []
        self.requests: list[Message] = []
        """Requests the server sent the client (each answered with a null result)."""
        self._reader = threading.Thread(target=self._read_all, daemon=True)
        self._reader.start()

    def _read_all(self) -> None:
        assert self.process.stdout is not None
        while (message := _read_message(self.process.stdout)) is not None:
            self._incoming.put(message)
        self._incoming.put(None)

    def _send(self, message: Message) -> None:
        assert self.process.stdin is not None
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: Message | None = None) -> None:
        """Send a notification (no answer expected)."""
        self._send({"method": method, "params": params or {}})

    def request(self, method: str, params: Message | None = None) -> Any:
        """Send a request and return its result, keeping notifications that arrive first."""
        self._next_id += 1
        wanted = self._next_id
        self._send({"id": wanted, "method": method, "params": params})
        answer = self._wait(lambda m: m.get("id") == wanted and "method" not in m, method)
        if "error" in answer:
            raise ProtocolError(f"{method} failed: {answer['error']}")
        return answer.get("result")

    def notification(self, method: str, accept: Callable[[Message], bool]) -> Message:
        """The params of the first notification `method` (received or to come) that
        `accept` takes; each is handed out once."""
        for index, seen in enumerate(self.notifications):
            if seen["method"] == method and accept(seen["params"]):
                del self.notifications[index]
                params: Message = seen["params"]
                return params
        found = self._wait(
            lambda m: m.get("method") == method and accept(m.get("params", {})), method
        )
        params = found["params"]
        return params

    def _wait(self, match: Callable[[Message], bool], what: str) -> Message:
        deadline = time.monotonic() + WAIT_S
        while True:
            left = deadline - time.monotonic()
            try:
                message = self._incoming.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise ProtocolError(f"no {what} within {WAIT_S:.0f} s") from None
            if message is None:
                raise ProtocolError(f"the server closed its output while waiting for {what}")
            if match(message):
                return message
            if "id" in message and "method" in message:  # a request to the client
                self.requests.append(message)
                self._send({"id": message["id"], "result": None})
            elif "method" in message:
                self.notifications.append(message)

    def finish(self) -> tuple[int, str]:
        """Wait for the process to end; its exit status and what it wrote to stderr."""
        try:
            self.process.wait(timeout=WAIT_S)
        finally:
            stderr = self.close()
        return self.process.returncode, stderr

    def close(self) -> str:
        """End the process if it still runs and close its pipes; what it wrote to stderr."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join(timeout=WAIT_S)
        assert self.process.stdin and self.process.stdout and self.process.stderr
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        stderr = self.process.stderr.read().decode("utf-8", "replace")
        self.process.stdout.close()
        self.process.stderr.close()
        return stderr

    def __enter__(self) -> LspSession:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.stderr is not None and not self.process.stderr.closed:
            self.close()  # not finished normally (a failed assertion): end it here


def apply_text_edits(text: str, edits: Sequence[Message]) -> str:
    """`text` after LSP `TextEdit`s (UTF-16 positions), applied from last to first."""
    lines = text.splitlines(keepends=True) or [""]
    if text.endswith(("\n", "\r")):
        lines.append("")

    def offset(position: Message) -> int:
        line = lines[position["line"]] if position["line"] < len(lines) else ""
        before = sum(len(previous) for previous in lines[: position["line"]])
        units, index = 0, 0
        while units < position["character"] and index < len(line):
            units += 2 if ord(line[index]) > 0xFFFF else 1
            index += 1
        return before + index

    spans = sorted(
        ((offset(e["range"]["start"]), offset(e["range"]["end"]), e["newText"]) for e in edits),
        reverse=True,
    )
    for start, end, new_text in spans:
        text = text[:start] + new_text + text[end:]
    return text
