"""Reporting out: every way a finding leaves looplint — the output formats (JSON, SARIF, GitHub,
GitLab, JUnit, …), the terminal renderer, the rule docs and the `objects` view.

It reads findings and settings; it never runs a rule.
"""
