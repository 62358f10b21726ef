"""What a `watch` block reports: the live `Report`, and the log that gathers its findings.

Hooks fire per parameter and per step; the `IssueLog` folds their observations
into one `Finding` per bug, and the `Report` shows them to the user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from looplint.identity import RuleIdentity

from .call_site import CallSite, user_call_site
from .errors import LoopLintRuntimeError
from .finding import Finding


@dataclass(slots=True)
class Issue:
    """A finding still being gathered while training runs (mutable, internal).

    Hooks fire per parameter and per step; an `Issue` collects the parameter
    names and the number of occurrences so the user gets one finding per bug.
    """

    identity: RuleIdentity
    check: str
    message: str
    optimizer: str | None
    step: int | None
    parameters: dict[str, None] = field(default_factory=dict)
    occurrences: int = 0
    last_seen: int | None = None
    site: CallSite | None = None

    def freeze(self) -> Finding:
        """Turn the gathered facts into a `Finding` value."""
        return Finding(
            code=self.identity.code,
            name=self.identity.name,
            check=self.check,
            message=self.message,
            optimizer=self.optimizer,
            parameters=tuple(self.parameters),
            step=self.step,
            occurrences=max(self.occurrences, 1),
            file=self.site.file if self.site is not None else None,
            line=self.site.line if self.site is not None else None,
        )


class Report:
    """The live result of a `watch` block: read it inside the block or after it.

    `findings` is complete once the block has ended (coverage is judged over the
    whole run); read inside the block it shows what has been seen so far.
    `inactive` lists reasons why checking could not run (for example CUDA-graph
    replay), so a silent report is never mistaken for a clean one. `unchecked`
    lists, one line each, what was seen but could not be judged (an optimizer
    looplint cannot follow, coverage without a model, ...): "no findings" then
    says exactly what was looked at.
    """

    __slots__ = ("_collect", "_findings", "inactive", "steps", "unchecked")

    def __init__(self, collect: Callable[[], list[Finding]]) -> None:
        self._collect: Callable[[], list[Finding]] | None = collect
        self._findings: list[Finding] = []
        self.inactive: list[str] = []
        self.unchecked: list[str] = []
        self.steps = 0

    @property
    def findings(self) -> list[Finding]:
        """Every distinct finding, in the order first seen."""
        if self._collect is not None:
            return self._collect()
        return list(self._findings)

    def close(self, findings: list[Finding]) -> None:
        """Freeze the findings when the block ends and drop the link to the session."""
        self._findings = list(findings)
        self._collect = None

    def raise_if_any(self) -> None:
        """Raise `LoopLintRuntimeError` listing every finding, if there is any."""
        findings = self.findings
        if findings:
            raise LoopLintRuntimeError(findings, unchecked=self.unchecked)

    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self.findings)

    def __str__(self) -> str:
        findings = self.findings
        steps = f"{self.steps} optimizer step{'s' if self.steps != 1 else ''} watched"
        lines = [
            f"looplint runtime check: {len(findings) or 'no'} finding"
            f"{'s' if len(findings) != 1 else ''} ({steps})"
        ]
        lines.extend(f"  {finding}".replace("\n", "\n  ") for finding in findings)
        lines.extend(f"  inactive: {reason}" for reason in self.inactive)
        lines.extend(f"  unchecked: {reason}" for reason in self.unchecked)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<looplint Report: {len(self.findings)} findings, {self.steps} steps>"


class IssueLog:
    """Collects issues during a run, one per (code, check, optimizer), in first-seen order.

    Keying by optimizer (not by step) is what makes a bug that repeats every step
    come out as one finding with an occurrence count.
    """

    __slots__ = ("_issues",)

    def __init__(self) -> None:
        self._issues: dict[tuple[str, str, str | None], Issue] = {}

    def note(
        self,
        identity: RuleIdentity,
        check: str,
        message: str,
        *,
        optimizer: str | None = None,
        step: int | None = None,
        parameters: Sequence[str] = (),
        group: str | None = None,
        site: CallSite | None = None,
    ) -> Issue:
        """Record one occurrence; the first occurrence fixes the message, step and place.

        `group` replaces the optimizer in the de-duplication key, for bugs that
        create a new optimizer each time (one finding, not one per optimizer).
        The user's call site is found on the stack only for a first occurrence
        (unless `site` gives one seen earlier), so repeats cost nothing.
        """
        key = (identity.code, check, group if group is not None else optimizer)
        issue = self._issues.get(key)
        if issue is None:
            issue = Issue(identity, check, message, optimizer, step)
            issue.site = site if site is not None else user_call_site(2)
            self._issues[key] = issue
        if step is None or group is not None or issue.occurrences == 0 or (issue.last_seen != step):
            issue.occurrences += 1
            issue.last_seen = step
        for name in parameters:
            issue.parameters[name] = None
        return issue

    def freeze(self) -> list[Finding]:
        """The findings so far, as values."""
        return [issue.freeze() for issue in self._issues.values()]

    def discard(self, keys: set[tuple[str, str, str | None]]) -> None:
        """Forget the issues with these `(code, check, optimizer label)` keys."""
        for key in keys:
            self._issues.pop(key, None)
