"""Commands: the command-line interface, the `check` command's orchestration, `--add-noqa`,
and the language server with the editor-buffer checks it uses.

The top layer: nothing in looplint imports from here.
"""
