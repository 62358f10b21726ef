"""The Neovim setup of docs/editors.md, run in a real headless Neovim against the server.

The documented snippet for the installed Neovim's version starts the server, and the
documented fix-on-save writes the fixed text: the fix must be in the file on disk right
after `:write`, not in the buffer a moment later. Skipped where Neovim is not installed.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, looplint_command

NVIM = shutil.which("nvim")
pytestmark = [
    pytest.mark.skipif(NVIM is None, reason="Neovim is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("pygls") is None, reason="the `lsp` extra is not installed"
    ),
]

LEAKY = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss
    """
)


def _version() -> tuple[int, int]:
    assert NVIM is not None
    first = subprocess.run([NVIM, "--version"], capture_output=True, text=True).stdout
    found = re.match(r"NVIM v(\d+)\.(\d+)", first)
    assert found is not None, first
    return int(found.group(1)), int(found.group(2))


def _documented_snippets() -> tuple[dict[str, str], str]:
    """The Neovim section's start-up snippets by the API they need, and fix-on-save."""
    text = (REPO / "docs" / "editors.md").read_text(encoding="utf-8")
    section = text.split("## Neovim", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```lua\n(.*?)```", section, re.S)
    [on_save] = [block for block in blocks if "BufWritePre" in block]
    setups = {
        api: block
        for block in blocks
        for api in ("vim.lsp.config(", "vim.lsp.start(", "vim.lsp.start_client(")
        if api in block
    }
    return setups, on_save


def test_the_documented_setup_for_this_neovim_fixes_on_save(tmp_path: Path) -> None:
    version = _version()
    setups, on_save = _documented_snippets()
    if version >= (0, 11):
        setup = setups["vim.lsp.config("]
    elif version >= (0, 8):
        setup = setups["vim.lsp.start("]
    else:
        setup = setups["vim.lsp.start_client("]
    command = ", ".join(f'"{part}"' for part in [*looplint_command(), "server"])
    assert '{ "looplint", "server" }' in setup
    init = tmp_path / "init.lua"
    init.write_text(setup.replace('{ "looplint", "server" }', "{ " + command + " }") + on_save)
    (tmp_path / "pyproject.toml").write_text("[tool.looplint]\n")
    train = tmp_path / "train.py"
    train.write_text(LEAKY)
    # Wait until the server has published the finding (it is running and attached), then
    # save and quit at once: a fix that arrives after the write would be lost.
    wait = (
        "lua assert(vim.wait(30000, function() return #vim.diagnostic.get(0) > 0 end, 50),"
        " 'no diagnostics from looplint')"
    )
    done = subprocess.run(
        [NVIM, "--headless", "-n", "-i", "NONE", "-u", str(init), str(train),
         "-c", "set filetype=python", "-c", wait, "-c", "write", "-c", "qall!"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert train.read_text() == LEAKY.replace("total += loss", "total += loss.item()"), (
        done.stderr
    )
