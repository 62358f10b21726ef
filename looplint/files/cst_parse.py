"""LibCST parsing without re-validating what the parser itself built.

`libcst.parse_module` creates every node through its dataclass constructor, whose
`__post_init__` runs the node's `_validate` (balanced parentheses, required whitespace):
checks meant for trees assembled by hand. A tree the parser produced from source it
accepted passes them by construction (LibCST's own comment says as much: validating
belongs in the visitor, "which would allow us to avoid validating the tree when parsing
a file"). On the files looplint analyses, that is 3 million needless checks and about a
tenth of the parse. So looplint parses with validation off, and leaves it on for every
node built afterwards: the nodes a fix constructs are still validated.

Should a LibCST release give `__post_init__` another job, the fast path turns itself off
and every parse validates as before.
"""

from __future__ import annotations

import threading

import libcst as cst
from libcst._nodes.base import CSTNode

_VALIDATING_INIT = CSTNode.__post_init__
_ONLY_VALIDATES = getattr(getattr(_VALIDATING_INIT, "__code__", None), "co_names", None) == (
    "_validate",
)
"""Whether `CSTNode.__post_init__` does nothing but validate (true of LibCST 1.x), so that
skipping it while parsing changes nothing but the time taken."""
_SWAP = threading.Lock()


def _trusted(node: CSTNode) -> None:
    """`__post_init__` while the parser builds a tree: nothing to check."""


def parse_module(text: str) -> cst.Module:
    """`libcst.parse_module(text)`, without validating the nodes the parser creates."""
    if not _ONLY_VALIDATES:
        return cst.parse_module(text)
    with _SWAP:
        CSTNode.__post_init__ = _trusted  # type: ignore[method-assign,assignment]
        try:
            return cst.parse_module(text)
        finally:
            CSTNode.__post_init__ = _VALIDATING_INIT  # type: ignore[method-assign]
