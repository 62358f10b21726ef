"""`looplint server`: the Language Server editors talk to over standard input/output.

It publishes a buffer's findings as diagnostics when it is opened, changed (after a
short pause in typing) and saved, and again for every open buffer when a settings file,
a `.gitignore` or a module changes on disk; it offers each safe fix as a quick fix, a
"disable for this line" (`# noqa: CODE`) for every finding, and a "fix all" source
action. The buffer is checked by `looplint.commands.buffer`, exactly as
`looplint check --stdin-filename` checks it, with the settings of the nearest
settings file above the file. Needs the `lsp` extra (pygls, lsprotocol).
"""

from __future__ import annotations

import asyncio
import os
import tokenize
import traceback
from collections.abc import Sequence
from functools import cache

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import PositionCodec, TextDocument

from looplint import __version__
from looplint.commands.add_noqa import with_file_noqa, with_noqa
from looplint.commands.buffer import buffer_fixes, check_buffer, fix_buffer, is_checkable
from looplint.errors import ConfigError
from looplint.finding import Finding
from looplint.identity import PARSE_ERROR
from looplint.registry import rule_classes
from looplint.reporting.reporters import DOCS_URL
from looplint.settings.config import CONFIG_FILE_NAMES
from looplint.text_edit import TextPosition, replacement_between, split_lines

SOURCE = "looplint"
"""The `source` of every diagnostic this server publishes."""
FIX_ALL = f"{types.CodeActionKind.SourceFixAll.value}.looplint"
CHANGE_PAUSE_S = 0.2
"""How long typing must pause before a changed buffer is checked again."""
SETTINGS_POLL_S = 1.0
"""How often the server looks at the settings files itself, for a client that cannot
watch files for it."""
WATCHED_NAMES = (*CONFIG_FILE_NAMES, ".gitignore")
"""The files besides the buffer that decide its findings, in each folder above it."""


@cache
def fixable_codes() -> frozenset[str]:
    """Codes of the rules that come with an automatic fix."""
    return frozenset(rule.identity.code for rule in rule_classes() if rule.FIXES)


class LooplintServer(LanguageServer):
    """A pygls server that remembers the pending check of each open buffer, so a newer
    change cancels an older check before it publishes stale diagnostics."""

    def __init__(self) -> None:
        super().__init__("looplint", __version__)
        self.pending: dict[str, asyncio.Task[None]] = {}
        self.settings_watch: asyncio.Task[None] | None = None
        self.settings_seen: dict[str, tuple[int, int] | None] = {}
        """Settings files (present or not) and how each looked: see `watch_settings`."""

    def open_document(self, uri: str) -> TextDocument | None:
        """The buffer the client has open at `uri` (None once it was closed)."""
        documents: dict[str, TextDocument] = self.workspace.text_documents
        return documents.get(uri)

    def open_uris(self) -> list[str]:
        """Every buffer the client has open."""
        documents: dict[str, TextDocument] = self.workspace.text_documents
        return list(documents)

    def path_of(self, document: TextDocument) -> str:
        """The file a buffer is (or will be) saved as; an untitled buffer is taken to
        live in the first workspace folder."""
        path = to_fs_path(document.uri)
        if path is not None:
            return path
        root: str | None = self.workspace.root_path
        name = os.path.basename(document.uri.rpartition(":")[2]) or "untitled"
        if not name.endswith(".py"):
            name += ".py"
        return os.path.join(root or os.getcwd(), name)

    def schedule(self, uri: str, pause: float) -> None:
        """Check the buffer at `uri` after `pause` seconds, replacing a pending check."""
        earlier = self.pending.pop(uri, None)
        if earlier is not None:
            earlier.cancel()
        self.pending[uri] = asyncio.ensure_future(self._publish(uri, pause))

    async def _publish(self, uri: str, pause: float) -> None:
        try:
            if pause:
                await asyncio.sleep(pause)
            document = self.open_document(uri)
            if document is None:
                return
            version, text = document.version, document.source
            path, codec = self.path_of(document), document.position_codec
            if not is_checkable(path):
                return
            diagnostics, problems = await asyncio.to_thread(_diagnose, path, text, codec)
            for problem in problems:  # written from here: the transport is not thread-safe
                self.log(types.MessageType.Error, problem)
            current = self.open_document(uri)
            if current is None or current.version != version:
                return  # the buffer changed meanwhile: its own check publishes
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
            )
        finally:
            if self.pending.get(uri) is asyncio.current_task():
                del self.pending[uri]

    def recheck_all(self, pause: float) -> None:
        """Check every open buffer again (something they all depend on changed)."""
        for uri in self.open_uris():
            self.schedule(uri, pause)

    def remember_settings(self, path: str) -> None:
        """With the server watching for itself: note how the settings files above `path`
        look now (the buffer is about to be checked with them)."""
        if self.settings_watch is None:
            return
        for candidate in settings_candidates(path):
            self.settings_seen.setdefault(candidate, file_stamp(candidate))

    async def watch_settings(self) -> None:
        """For a client that cannot watch files: look at the settings files above the
        open buffers every `SETTINGS_POLL_S` and re-check them all when one changed,
        appeared or went away, so a saved `pyproject.toml` shows without an edit."""
        while True:
            await asyncio.sleep(SETTINGS_POLL_S)
            known = list(self.settings_seen)
            now = await asyncio.to_thread(file_stamps, known)
            changed = False
            for path, stamp in zip(known, now, strict=True):
                if self.settings_seen.get(path) != stamp:
                    self.settings_seen[path] = stamp
                    changed = True
            if changed:
                self.recheck_all(0)

    def log(self, kind: types.MessageType, message: str) -> None:
        """Write to the client's log (the editor's output panel for this server)."""
        self.window_log_message(types.LogMessageParams(type=kind, message=message))


def settings_candidates(path: str) -> list[str]:
    """Every file, present or not, whose change can change the findings of the buffer
    saved as `path`: the settings files and `.gitignore` of each folder above it."""
    found = []
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        found += [os.path.join(folder, name) for name in WATCHED_NAMES]
        parent = os.path.dirname(folder)
        if parent == folder:
            return found
        folder = parent


def file_stamps(paths: Sequence[str]) -> list[tuple[int, int] | None]:
    """`file_stamp` of each path."""
    return [file_stamp(path) for path in paths]


def file_stamp(path: str) -> tuple[int, int] | None:
    """(modification time, size) of a file; None when there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def _diagnose(
    path: str, text: str, codec: PositionCodec
) -> tuple[list[types.Diagnostic], list[str]]:
    """The buffer's diagnostics, and what went wrong inside looplint (for the log)."""
    try:
        checked = check_buffer(path, text)
    except ConfigError as error:
        return [_config_diagnostic(error)], []
    except Exception:  # never let one buffer take the server down
        return [], [f"looplint: internal error in {path}:\n{traceback.format_exc()}"]
    problems = [f"looplint: internal error in {path}:\n{trace}" for trace in checked.tracebacks]
    lines = split_lines(text)
    return [diagnostic(finding, lines, codec) for finding in checked.findings], problems


def _client_range(
    start: TextPosition, end: TextPosition, lines: Sequence[str], codec: PositionCodec
) -> types.Range:
    """A range in the client's position units (UTF-16 unless negotiated otherwise)."""
    return codec.range_to_client_units(
        lines,
        types.Range(
            start=types.Position(line=start.line, character=start.column),
            end=types.Position(line=end.line, character=end.column),
        ),
    )


def finding_range(finding: Finding, lines: Sequence[str], codec: PositionCodec) -> types.Range:
    """Where a finding is, in the client's units (findings count from 1, LSP from 0)."""
    start = TextPosition(finding.line - 1, finding.column - 1)
    end = max(start, TextPosition(finding.end_line - 1, finding.end_column - 1))
    return _client_range(start, end, lines, codec)


def diagnostic(finding: Finding, lines: Sequence[str], codec: PositionCodec) -> types.Diagnostic:
    """A finding as an editor shows it: an error when the file could not be checked at
    all, a warning for a rule's finding, with a link to the rule's documentation."""
    severity = (
        types.DiagnosticSeverity.Error
        if finding.code == PARSE_ERROR.code
        else types.DiagnosticSeverity.Warning
    )
    return types.Diagnostic(
        range=finding_range(finding, lines, codec),
        message=finding.message,
        severity=severity,
        code=finding.code,
        code_description=types.CodeDescription(href=f"{DOCS_URL}#{finding.code.lower()}"),
        source=SOURCE,
    )


def _config_diagnostic(error: ConfigError) -> types.Diagnostic:
    """A broken configuration, shown on the first line of every buffer it governs."""
    origin = types.Position(line=0, character=0)
    return types.Diagnostic(
        range=types.Range(start=origin, end=origin),
        message=f"looplint: {error}",
        severity=types.DiagnosticSeverity.Error,
        source=SOURCE,
    )


def _text_edit(before: str, after: str, codec: PositionCodec) -> types.TextEdit | None:
    replacement = replacement_between(before, after)
    if replacement is None:
        return None
    span = _client_range(replacement.start, replacement.end, split_lines(before), codec)
    return types.TextEdit(range=span, new_text=replacement.text)


def _wanted(kind: str, only: Sequence[str] | None) -> bool:
    """Whether `kind` is one the client asked for (`only` names kinds or their parents)."""
    return only is None or any(kind == k or kind.startswith(f"{k}.") for k in only)


def code_actions(
    uri: str, path: str, text: str, codec: PositionCodec, context: types.CodeActionContext
) -> list[types.CodeAction]:
    """For the buffer `text` at `uri` saved as `path`: a quick fix for each fixable finding
    the client points at, "disable for this line" (`# noqa: CODE`) for every finding it
    points at, and "fix all"."""
    if not is_checkable(path):
        return []
    only = [str(kind) for kind in context.only] if context.only else None
    mine = [d for d in context.diagnostics if d.source == SOURCE and isinstance(d.code, str)]
    ours = [d for d in mine if d.code in fixable_codes()]
    actions: list[types.CodeAction] = []
    try:
        if ours and _wanted(types.CodeActionKind.QuickFix.value, only):
            lines = split_lines(text)

            def matching(finding: Finding) -> list[types.Diagnostic]:
                # By code and lines: clients may send back columns they re-counted.
                span = finding_range(finding, lines, codec)
                return [
                    d
                    for d in ours
                    if d.code == finding.code
                    and (d.range.start.line, d.range.end.line) == (span.start.line, span.end.line)
                ]

            for fix in buffer_fixes(path, text, lambda finding: bool(matching(finding))):
                matched = matching(fix.finding)
                edit = _text_edit(text, fix.fixed_text, codec)
                if matched and edit is not None:
                    actions.append(
                        types.CodeAction(
                            title=f"looplint: fix {fix.finding.code} ({fix.finding.name})",
                            kind=types.CodeActionKind.QuickFix,
                            diagnostics=matched,
                            edit=types.WorkspaceEdit(changes={uri: [edit]}),
                            is_preferred=True,
                        )
                    )
        if mine and _wanted(types.CodeActionKind.QuickFix.value, only):
            actions += _suppressions(uri, text, codec, mine)
        # Unasked, "fix all" is offered next to a fixable finding; a client that asks
        # for it by kind (fix on save) gets it whatever the cursor is on.
        if (ours or only is not None) and _wanted(FIX_ALL, only):
            fixed = fix_buffer(path, text)
            edit = _text_edit(text, fixed, codec) if fixed is not None else None
            if edit is not None:
                actions.append(
                    types.CodeAction(
                        title="looplint: fix all auto-fixable problems",
                        kind=FIX_ALL,
                        edit=types.WorkspaceEdit(changes={uri: [edit]}),
                    )
                )
    except ConfigError:
        return []  # the configuration diagnostic already says what is wrong
    return actions


def _suppressions(
    uri: str, text: str, codec: PositionCodec, diagnostics: Sequence[types.Diagnostic]
) -> list[types.CodeAction]:
    """"Disable CODE for this line" for each finding, as ruff's server offers for every
    diagnostic: the `# noqa: CODE` that `looplint check --add-noqa` would write. A file
    that cannot be parsed (`LL000`) has no line to silence; it gets the file-wide
    `# looplint: noqa: LL000` instead."""
    actions: list[types.CodeAction] = []
    offered: set[tuple[str, int]] = set()
    for diagnostic in diagnostics:
        code = str(diagnostic.code)
        line = diagnostic.range.start.line
        if (code, line) in offered:
            continue
        offered.add((code, line))
        if code == PARSE_ERROR.code:
            title = f"looplint: disable {code} for this file"
            silenced = with_file_noqa(text, code)
        else:
            title = f"looplint: disable {code} for this line (# noqa: {code})"
            try:
                silenced, added = with_noqa(text, {line + 1: [code]})
            except (tokenize.TokenError, SyntaxError):
                continue
            if not added:
                continue  # the line ends inside a string: a comment cannot go there
        edit = _text_edit(text, silenced, codec)
        if edit is not None:
            actions.append(
                types.CodeAction(
                    title=title,
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diagnostic],
                    edit=types.WorkspaceEdit(changes={uri: [edit]}),
                )
            )
    return actions


WATCH_REGISTRATION = types.Registration(
    id="looplint-watched-files",
    method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
    register_options=types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[
            types.FileSystemWatcher(glob_pattern=pattern)
            for pattern in (*(f"**/{name}" for name in WATCHED_NAMES), "**/*.py")
        ]
    ),
)
"""What the server asks the client to watch: what decides the findings besides the buffer."""


def _can_watch_files(capabilities: types.ClientCapabilities) -> bool:
    workspace = capabilities.workspace
    watching = workspace.did_change_watched_files if workspace is not None else None
    return bool(watching and watching.dynamic_registration)


def build_server() -> LooplintServer:
    """A server with every feature registered (not yet listening)."""
    server = LooplintServer()

    @server.feature(types.INITIALIZED)
    async def initialized(ls: LooplintServer, params: types.InitializedParams) -> None:
        if _can_watch_files(ls.client_capabilities):
            await ls.client_register_capability_async(
                types.RegistrationParams(registrations=[WATCH_REGISTRATION])
            )
        else:
            ls.settings_watch = asyncio.ensure_future(ls.watch_settings())

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    async def watched_files_changed(
        ls: LooplintServer, params: types.DidChangeWatchedFilesParams
    ) -> None:
        # A config, a .gitignore or an imported module changed on disk.
        ls.recheck_all(CHANGE_PAUSE_S)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: LooplintServer, params: types.DidOpenTextDocumentParams) -> None:
        document = ls.open_document(params.text_document.uri)
        if document is not None:
            ls.remember_settings(ls.path_of(document))
        ls.schedule(params.text_document.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: LooplintServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, CHANGE_PAUSE_S)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: LooplintServer, params: types.DidSaveTextDocumentParams) -> None:
        # Other open buffers may import the module just saved: their facts came from disk.
        ls.recheck_all(0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: LooplintServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        pending = ls.pending.pop(uri, None)
        if pending is not None:
            pending.cancel()
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=False
        ),
    )
    async def code_action(
        ls: LooplintServer, params: types.CodeActionParams
    ) -> list[types.CodeAction]:
        document = ls.open_document(params.text_document.uri)
        if document is None:
            return []
        # Read the buffer here, on the loop that applies changes; compute elsewhere.
        path, text, codec = ls.path_of(document), document.source, document.position_codec
        return await asyncio.to_thread(
            code_actions, document.uri, path, text, codec, params.context
        )

    return server


def serve() -> None:
    """Serve one editor session over standard input/output until it says `exit`."""
    build_server().start_io()
