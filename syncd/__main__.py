"""``python -m syncd`` and the ``syncd`` console script: process-wide settings, then the CLI."""

from __future__ import annotations

import gc
import sys
from typing import NoReturn


def entry() -> NoReturn:
    # Starting imports ~900 modules whose objects live as long as the process; the young
    # generation's collections would walk them about a hundred times meanwhile (~10 ms of
    # every start, make bench). syncd.app.cli.entry freezes them and collects again.
    gc.disable()
    # syncd speaks HTTP/1.1 only (no transport of its asks for HTTP/2), but httpcore imports
    # h2 whenever it is installed (msgraph-core depends on httpx[http2]): ~10 ms of every
    # start. Marked absent, httpcore leaves its HTTP/2 connection class unimplemented.
    sys.modules.setdefault("h2", None)  # type: ignore[arg-type]
    from syncd.app.cli import entry as command_line

    command_line()


if __name__ == "__main__":
    entry()
