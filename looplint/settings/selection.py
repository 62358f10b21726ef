"""Turning `--select/--ignore/--extend-select` words into a set of rule codes."""

from __future__ import annotations

from collections.abc import Iterable

from looplint.errors import ConfigError
from looplint.identity import PARSE_ERROR, RuleIdentity


def expand(selector: str, identities: Iterable[RuleIdentity]) -> set[str]:
    """Codes matched by one selector: a code, a code prefix, a kebab name, or `ALL`."""
    known = list(identities)
    word = selector.strip()
    if word.upper() == "ALL":
        return {identity.code for identity in known}
    matched = {
        identity.code
        for identity in known
        if identity.code.startswith(word.upper()) or identity.name == word.lower()
    }
    if not matched or not word:
        raise ConfigError(
            f"unknown rule selector `{selector}` "
            "(use a code such as LL001, a prefix, a rule name or ALL)"
        )
    return matched


def selected_codes(
    identities: Iterable[RuleIdentity],
    select: Iterable[str] | None,
    extend_select: Iterable[str] = (),
    ignore: Iterable[str] = (),
) -> frozenset[str]:
    """The codes that end up enabled, ruff-style: select (default ALL) + extend - ignore.

    `LL000` (a file that could not be read or parsed) is on whatever `select` says:
    only `ignore` turns it off, so narrowing the rules never hides an unchecked file.
    """
    known = list(identities)
    codes: set[str] = set()
    for selector in select if select is not None else ["ALL"]:
        codes |= expand(selector, known)
    for selector in extend_select:
        codes |= expand(selector, known)
    ignored = {code for selector in ignore for code in expand(selector, known)}
    codes |= {PARSE_ERROR.code}
    return frozenset(codes - ignored)
