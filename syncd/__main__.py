"""``python -m syncd``: the same as the ``syncd`` console script."""

from syncd.app.cli import entry

entry()
