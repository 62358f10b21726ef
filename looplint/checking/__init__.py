"""Checking: running the selected rules over parsed files — one file (`checker`), a whole run
with its processes and cross-module bindings (`runner`), and the result cache.

It imports files, analysis, rules and settings; nothing here formats output.
"""
