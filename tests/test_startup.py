"""What a cycle imports: no ORM on an existing database, nothing heavy for a --json delta."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncd.adapters.sqlite import Store
from syncd.errors import ExitCode
from tests.conftest import Harness

_OPEN_AND_REPORT = """
import sys
import syncd.app.cli
from syncd.adapters.sqlite import Store

store = Store(sys.argv[1])
store.ledger.set_converged("probe")
store.close()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "sqlmodel")))
"""


def _probe(script: str, config_path: Path, *, check: bool = True) -> tuple[Any, Any]:
    """Run ``script`` with a configuration in a fresh interpreter: the ``--json`` report it
    printed, and the JSON of its last line on stderr (what it found loaded)."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )
    return json.loads(done.stdout), json.loads(done.stderr.strip().splitlines()[-1])


def test_a_cycle_on_an_existing_database_does_not_load_sqlalchemy(tmp_path: Path) -> None:
    # SQLAlchemy is a third of a small cycle's start-up; only creating tables needs it.
    database = tmp_path / "state.db"
    Store(str(database)).close()
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_AND_REPORT, str(database)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'converged'").fetchone() == ("probe",)


_SYNC_AND_REPORT = """
import json, sys
from syncd.app.cli import main
code = main(["sync", "--json", "--config", sys.argv[1]])
heavy = ("rich", "sqlalchemy", "sqlmodel", "tenacity", "prometheus_client")
print(json.dumps([code, sorted({m.split(".")[0] for m in sys.modules} & set(heavy))]), file=sys.stderr)
"""


def test_a_delta_sync_with_json_output_loads_only_what_it_needs(
    make_harness: Callable[..., Harness],
) -> None:
    # Start-up is a tenth of a small delta cycle: no progress bars, tables, ORM or retry
    # machinery unless they are used.
    h = make_harness(users=20)
    assert h.sync().exit_code == ExitCode.OK
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Light start")
    report, (code, loaded) = _probe(_SYNC_AND_REPORT, h.config_path)
    assert report["scim_requests"] == {"PATCH /Users": 1}
    assert report["concurrency"]["ceiling"] == 8  # the limiter's state, in --json
    assert report["concurrency"]["throttled"] == 0
    assert (code, loaded) == (0, [])


_LAUNCH_AND_REPORT = """
import gc, json, os, sys
import syncd.__main__ as launcher

exit_now = os._exit

def report(code):
    absent = ("h2", "msgraph.generated.models.o_data_errors.o_data_error")
    loaded = sorted(m for m in absent if sys.modules.get(m) is not None)
    print(json.dumps([code, loaded, gc.isenabled()]), file=sys.stderr)
    sys.stderr.flush()
    exit_now(code)

os._exit = report  # the console script's own exit, observed
sys.argv = ["syncd", "sync", "--json", "--config", sys.argv[1]]
launcher.entry()
"""


def test_the_console_script_starts_without_http2_or_graph_models_and_collects_again(
    make_harness: Callable[..., Harness],
) -> None:
    # syncd.__main__.entry is the console script: h2 (HTTP/2, never spoken) and the Graph
    # error model (needed only for an error) are not imported, and the collector that was
    # off while modules were imported runs again for the cycle.
    h = make_harness(users=20)
    assert h.sync().exit_code == ExitCode.OK
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Launched")
    report, (code, loaded, collecting) = _probe(_LAUNCH_AND_REPORT, h.config_path, check=False)
    assert report["scim_requests"] == {"PATCH /Users": 1}
    assert (code, loaded, collecting) == (0, [], True)
    titles = [u.get("title") for u in h.learnster.users.values()]
    assert titles.count("Launched") == 1


_QUIET_AND_REPORT = """
import json, sys
from syncd.app.cli import main
code = main(["sync", "--json", "--config", sys.argv[1]])
print(json.dumps([code, "phonenumbers" in sys.modules]), file=sys.stderr)
"""


def test_a_cycle_in_which_nothing_changed_maps_nobody_and_loads_no_phone_rules(
    make_harness: Callable[..., Harness],
) -> None:
    # Without [sync] phone_default_region (which the configuration checks against
    # phonenumbers' regions), only mapping a user needs phonenumbers: ~9 ms of a start.
    h = make_harness(users=20, extra="")
    assert h.sync().exit_code == ExitCode.OK
    report, (code, phone_rules) = _probe(_QUIET_AND_REPORT, h.config_path)
    assert report["planned"] == {}  # a quiet cycle: nothing was planned
    assert report["scim_requests"] == {}
    assert (code, phone_rules) == (0, False)
