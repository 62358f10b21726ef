"""`looplint server`: real editor sessions over stdio against the console script."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from looplint.settings.config import tomllib
from tests.conftest import REPO, looplint_command
from tests.lsp_session import LspSession, Message, apply_text_edits

needs_lsp = pytest.mark.skipif(
    importlib.util.find_spec("pygls") is None, reason="the `lsp` extra is not installed"
)

STEPS = "def apply_update(optimizer):\n    optimizer.step()\n"
BUGGY = textwrap.dedent(
    """\
    import torch

    from steps import apply_update

    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
    total = 0.0
    for epoch in range(10):
        scheduler.step()
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            _ = "😋"; apply_update(optimizer)
            total += loss * x.size(0)
    """
)
ITEM_FIXED = BUGGY.replace("total += loss * x", "total += loss.item() * x")
CLEAN = ITEM_FIXED.replace(
    "        loss = torch", "        optimizer.zero_grad()\n        loss = torch"
)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _span(source: str, line: int, fragment: str) -> Message:
    """The LSP range (UTF-16 columns) of `fragment` on 0-based `line` of `source`."""
    text = source.splitlines()[line]
    start = text.index(fragment)
    return {
        "start": {"line": line, "character": _utf16(text[:start])},
        "end": {"line": line, "character": _utf16(text[: start + len(fragment)])},
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose config turns LL004 off and whose `steps.py` steps the optimizer."""
    (tmp_path / "pyproject.toml").write_text('[tool.looplint]\nignore = ["LL004"]\n')
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "train.py").write_text("")  # on disk: still empty; the buffer is not saved
    return tmp_path


def _start(
    folder: Path, cwd: Path, encodings: tuple[str, ...] = (), watches: bool = False
) -> LspSession:
    """A session after the `initialize` handshake, rooted at `folder`, with a client
    that can count columns in `encodings` (default: UTF-16 only) and, with `watches`,
    watch files for the server."""
    session = LspSession([*looplint_command(), "server"], cwd)
    result = session.request(
        "initialize",
        {
            "processId": None,
            "rootUri": folder.as_uri(),
            "capabilities": {
                "general": {"positionEncodings": list(encodings or ("utf-16",))},
                "workspace": {"didChangeWatchedFiles": {"dynamicRegistration": watches}},
                "textDocument": {
                    "publishDiagnostics": {"versionSupport": True},
                    "codeAction": {
                        "codeActionLiteralSupport": {
                            "codeActionKind": {"valueSet": ["quickfix", "source.fixAll"]}
                        }
                    },
                },
            },
        },
    )
    assert result["serverInfo"]["name"] == "looplint"
    assert result["capabilities"]["positionEncoding"] == (encodings or ("utf-16",))[0]
    kinds = result["capabilities"]["codeActionProvider"]["codeActionKinds"]
    assert kinds == ["quickfix", "source.fixAll.looplint"]
    session.notify("initialized")
    return session


@pytest.fixture
def session(project: Path) -> Iterator[LspSession]:
    # Started from elsewhere: settings come from the file's folder, not the server's.
    with _start(project, cwd=project.parent) as started:
        yield started


def _diagnostics(session: LspSession, uri: str, version: int) -> list[Message]:
    params = session.notification(
        "textDocument/publishDiagnostics",
        lambda p: p["uri"] == uri and p.get("version") == version,
    )
    found: list[Message] = params["diagnostics"]
    return found


def _open(session: LspSession, uri: str, text: str) -> None:
    session.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )


@needs_lsp
def test_a_whole_editing_session(session: LspSession, project: Path) -> None:
    uri = (project / "train.py").as_uri()
    _open(session, uri, BUGGY)

    published = _diagnostics(session, uri, 1)
    assert [(d["code"], d["source"], d["severity"]) for d in published] == [
        ("LL001", "looplint", 2),  # the helper in steps.py steps: read from disk
        ("LL006", "looplint", 2),
    ]  # LL004 (`scheduler.step()` first) is off in pyproject.toml
    missing_clear, keeps_graph = published
    assert missing_clear["range"] == _span(BUGGY, 13, "apply_update(optimizer)")
    assert "optimizer.zero_grad()" in missing_clear["message"]
    assert keeps_graph["range"] == _span(BUGGY, 14, "total += loss * x.size(0)")
    assert keeps_graph["codeDescription"]["href"].endswith("#ll006")

    actions = session.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "range": keeps_graph["range"],
            "context": {"diagnostics": [keeps_graph]},
        },
    )
    assert [(action["kind"], action["title"]) for action in actions] == [
        ("quickfix", "looplint: fix LL006 (loss-keeps-graph)"),
        ("quickfix", "looplint: disable LL006 for this line (# noqa: LL006)"),
        ("source.fixAll.looplint", "looplint: fix all auto-fixable problems"),
    ]
    quick_fix, silence_graph, _ = actions
    assert quick_fix["diagnostics"] == [keeps_graph] and quick_fix["isPreferred"] is True
    edits = quick_fix["edit"]["changes"][uri]
    assert len(edits) == 1 and edits[0]["range"]["start"]["line"] == 14  # just the line
    assert apply_text_edits(BUGGY, edits) == ITEM_FIXED

    # A client that re-counted the columns it sends back still gets the fix.
    end = {**keeps_graph["range"]["end"], "character": keeps_graph["range"]["end"]["character"] + 2}
    recounted = {**keeps_graph, "range": {**keeps_graph["range"], "end": end}}
    again, silence_again = session.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "range": recounted["range"],
            "context": {"diagnostics": [recounted], "only": ["quickfix"]},
        },
    )
    assert again["edit"] == quick_fix["edit"]
    assert silence_again["title"].startswith("looplint: disable LL006")
    assert "isPreferred" not in silence_graph  # the fix is preferred over silencing
    [noqa_graph] = silence_graph["edit"]["changes"][uri]
    assert apply_text_edits(BUGGY, [noqa_graph]).splitlines()[14] == (
        "        total += loss * x.size(0)  # noqa: LL006"
    )

    # A finding without a fix still gets an action: "disable for this line", as ruff
    # offers on every diagnostic; "fix all" on request (as on save).
    [silence] = session.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "range": missing_clear["range"],
            "context": {"diagnostics": [missing_clear]},
        },
    )
    assert silence["kind"] == "quickfix" and silence["diagnostics"] == [missing_clear]
    assert silence["title"] == "looplint: disable LL001 for this line (# noqa: LL001)"
    silenced = apply_text_edits(BUGGY, silence["edit"]["changes"][uri])
    assert silenced.splitlines()[13] == '        _ = "😋"; apply_update(optimizer)  # noqa: LL001'
    session.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": silenced}]},
    )
    assert [d["code"] for d in _diagnostics(session, uri, 2)] == ["LL006"]  # LL001 silenced
    [fix_all] = session.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "range": _span(BUGGY, 0, "import"),
            "context": {"diagnostics": [], "only": ["source.fixAll"]},
        },
    )
    assert apply_text_edits(BUGGY, fix_all["edit"]["changes"][uri]) == ITEM_FIXED

    session.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 3},
            "contentChanges": [{"text": CLEAN}],
        },
    )
    assert _diagnostics(session, uri, 3) == []
    assert session.requests == []  # this client cannot watch files: nothing registered

    assert session.request("shutdown") is None
    session.notify("exit")
    status, stderr = session.finish()
    assert status == 0, stderr


@needs_lsp
def test_incremental_changes_and_a_save_that_changes_another_module(
    session: LspSession, project: Path
) -> None:
    uri = (project / "train.py").as_uri()
    (project / "steps.py").write_text("def apply_update(optimizer):\n    print(optimizer)\n")
    _open(session, uri, ITEM_FIXED)
    assert _diagnostics(session, uri, 1) == []  # the helper does not step: nothing to clear

    # An edit as editors send it: a range replaced (here: the emoji statement removed).
    line = ITEM_FIXED.splitlines().index('        _ = "😋"; apply_update(optimizer)')
    session.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [
                {
                    "range": {
                        "start": {"line": line, "character": 8},
                        "end": {"line": line, "character": 8 + _utf16('_ = "😋"; ')},
                    },
                    "text": "",
                }
            ],
        },
    )
    assert _diagnostics(session, uri, 2) == []

    (project / "steps.py").write_text(STEPS)  # another module changes on disk ...
    session.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    [finding] = _diagnostics(session, uri, 2)  # ... and the buffer is checked again
    assert finding["code"] == "LL001"
    assert finding["range"]["start"] == {"line": line, "character": 8}

    session.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    cleared = session.notification(
        "textDocument/publishDiagnostics", lambda p: p["uri"] == uri and not p["diagnostics"]
    )
    assert cleared["diagnostics"] == []
    assert session.request("shutdown") is None
    session.notify("exit")
    assert session.finish()[0] == 0


@needs_lsp
def test_a_broken_config_is_shown_on_the_buffer(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.looplint]\nignore = ["LL999"]\n')
    with _start(project, cwd=project) as session:
        uri = (project / "train.py").as_uri()
        _open(session, uri, BUGGY)
        [problem] = _diagnostics(session, uri, 1)
        assert problem["severity"] == 1 and "LL999" in problem["message"]
        assert problem["range"]["start"] == {"line": 0, "character": 0}
        session.request("shutdown")
        session.notify("exit")
        assert session.finish()[0] == 0


@needs_lsp
def test_a_changed_config_on_disk_rechecks_open_buffers(project: Path) -> None:
    with _start(project, cwd=project, watches=True) as session:
        uri = (project / "train.py").as_uri()
        _open(session, uri, BUGGY)
        assert [d["code"] for d in _diagnostics(session, uri, 1)] == ["LL001", "LL006"]
        [registration] = session.requests[0]["params"]["registrations"]
        assert registration["method"] == "workspace/didChangeWatchedFiles"
        watched = {w["globPattern"] for w in registration["registerOptions"]["watchers"]}
        assert "**/pyproject.toml" in watched and "**/*.py" in watched

        config = project / "pyproject.toml"
        config.write_text('[tool.looplint]\nignore = ["LL004", "LL006"]\n')
        session.notify(
            "workspace/didChangeWatchedFiles", {"changes": [{"uri": config.as_uri(), "type": 2}]}
        )
        assert [d["code"] for d in _diagnostics(session, uri, 1)] == ["LL001"]
        assert {"**/looplint.toml", "**/.looplint.toml"} <= watched

        # A looplint.toml created beside it wins over pyproject.toml: noticed at once,
        # without an edit of the buffer.
        dedicated = project / "looplint.toml"
        dedicated.write_text('ignore = ["LL001", "LL004"]\n')
        session.notify(
            "workspace/didChangeWatchedFiles",
            {"changes": [{"uri": dedicated.as_uri(), "type": 1}]},
        )
        assert [d["code"] for d in _diagnostics(session, uri, 1)] == ["LL006"]
        session.request("shutdown")
        session.notify("exit")
        assert session.finish()[0] == 0


@needs_lsp
def test_a_client_that_cannot_watch_files_still_sees_a_changed_config(project: Path) -> None:
    # Neovim on Linux, Helix: no file watching for servers. The server looks itself.
    with _start(project, cwd=project, watches=False) as session:
        uri = (project / "train.py").as_uri()
        _open(session, uri, BUGGY)
        assert [d["code"] for d in _diagnostics(session, uri, 1)] == ["LL001", "LL006"]
        (project / ".looplint.toml").write_text('ignore = ["LL004", "LL006"]\n')
        # no notification, no edit: the next diagnostics come from the server's own look
        assert [d["code"] for d in _diagnostics(session, uri, 1)] == ["LL001"]
        (project / ".looplint.toml").unlink()
        assert [d["code"] for d in _diagnostics(session, uri, 1)] == ["LL001", "LL006"]
        assert session.requests == []
        session.request("shutdown")
        session.notify("exit")
        assert session.finish()[0] == 0


@needs_lsp
def test_a_file_that_does_not_parse_can_be_silenced_for_the_file(project: Path) -> None:
    with _start(project, cwd=project) as session:
        uri = (project / "train.py").as_uri()
        broken = "#!/usr/bin/env python\nfor x in data\n    optimizer.step()\n"
        _open(session, uri, broken)
        [problem] = _diagnostics(session, uri, 1)
        assert problem["code"] == "LL000"
        [action] = session.request(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": uri},
                "range": problem["range"],
                "context": {"diagnostics": [problem]},
            },
        )
        assert action["title"] == "looplint: disable LL000 for this file"
        silenced = apply_text_edits(broken, action["edit"]["changes"][uri])
        assert silenced.splitlines()[:2] == ["#!/usr/bin/env python", "# looplint: noqa: LL000"]
        session.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": silenced}]},
        )
        assert _diagnostics(session, uri, 2) == []
        session.request("shutdown")
        session.notify("exit")
        assert session.finish()[0] == 0


@needs_lsp
def test_columns_in_code_points_for_a_client_that_counts_them(project: Path) -> None:
    with _start(project, cwd=project, encodings=("utf-32",)) as session:
        uri = (project / "train.py").as_uri()
        _open(session, uri, BUGGY)
        missing_clear = _diagnostics(session, uri, 1)[0]
        line = BUGGY.splitlines()[13]
        assert missing_clear["range"]["start"] == {
            "line": 13,
            "character": line.index("apply_update"),  # one less than in UTF-16: the emoji
        }
        session.request("shutdown")
        session.notify("exit")
        assert session.finish()[0] == 0


@needs_lsp
def test_a_syntax_error_is_an_error_where_python_puts_it(
    session: LspSession, project: Path
) -> None:
    uri = (project / "broken.py").as_uri()
    _open(session, uri, "import torch\n\nfor x in loader\n    optimizer.step()\n")
    [problem] = _diagnostics(session, uri, 1)
    assert problem["code"] == "LL000" and problem["severity"] == 1
    assert problem["range"]["start"]["line"] == 2


_WITHOUT_LSP = (
    "import sys; sys.modules['pygls'] = None; sys.modules['lsprotocol'] = None; "
    "from looplint.commands.cli import main; main()"
)


def test_the_server_without_the_lsp_extra_says_how_to_install_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LSP, "server"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "looplint: error: `looplint server` needs pygls 2 (the `lsp` extra): "
        "pip install 'pygls>=2,<3'"
    ]


def test_checking_works_without_the_lsp_extra(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(BUGGY)
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LSP, "check", "--no-cache", "train.py"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "LL006" in result.stdout


def test_the_documented_helix_setup_runs_this_server() -> None:
    for document in ("README.md", "docs/editors.md"):
        text = (REPO / document).read_text(encoding="utf-8")
        [block] = [
            b
            for b in re.findall(r"```toml\n(.*?)```", text, re.S)
            if "language-server.looplint" in b
        ]
        config = tomllib.loads(block)
        server = config["language-server"]["looplint"]
        assert [server["command"], *server["args"]] == ["looplint", "server"]
        [python] = config["language"]
        assert "looplint" in python["language-servers"]
