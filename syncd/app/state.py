"""`syncd state backup|restore` and the state database's line of `syncd check`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.adapters.sqlite.backup import backup, restore
from syncd.adapters.sqlite.faults import restore_advice
from syncd.adapters.sqlite.inspect import examine
from syncd.config import Config
from syncd.errors import ExitCode, StateError

if TYPE_CHECKING:
    from rich.console import Console


def add_state_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """`syncd state backup FILE [--force]` and `syncd state restore FILE`."""
    state = commands.add_parser("state", help="back up or restore the state database")
    actions = state.add_subparsers(dest="state_command", required=True, parser_class=type(state))
    save = actions.add_parser(
        "backup",
        parents=[common],
        help="copy the state database to FILE (SQLite's online backup: safe while a cycle runs)",
    )
    save.add_argument("file", metavar="FILE", help="the backup to write (must not exist)")
    save.add_argument("--force", action="store_true", help="replace FILE if it exists")
    load = actions.add_parser(
        "restore",
        parents=[common],
        help="replace the state database with a backup (the replaced one is kept aside)",
    )
    load.add_argument("file", metavar="FILE", help="a backup made with 'syncd state backup'")


def cmd_state(config: Config, args: argparse.Namespace, console: Console) -> int:
    database = Path(config.state_database)
    if args.state_command == "backup":
        made = backup(database, Path(args.file), force=args.force)
        console.print(
            f"backed up {database} to {made.path} (schema version {made.version}; "
            f"{made.users_linked} users and {made.groups_linked} tags linked)",
            markup=False,
            soft_wrap=True,
        )
        return 0
    done = restore(database, Path(args.file))
    console.print(
        f"restored {args.file} into {database} (schema version {done.version}; "
        f"{done.users_linked} users and {done.groups_linked} tags linked). "
        + (f"The replaced database is kept as {done.replaced}. " if done.replaced else "")
        + "The next cycle plans over the whole directory once; what changed in Learnster "
        "since the backup is matched, not created again.",
        markup=False,
        soft_wrap=True,
    )
    return 0


def check_state(config: Config, console: Console) -> int:
    """SQLite's integrity check of the state database, as one line of `syncd check`."""
    from rich.markup import escape

    database = Path(config.state_database)
    shown = escape(str(database))
    try:
        found = examine(database)
    except StateError as exc:
        console.print(f"✗ {exc}", style="red", markup=False, soft_wrap=True)
        return int(exc.exit_code)
    if found is None:
        console.print(
            f"[green]✓[/] State database {shown} does not exist yet: the first cycle creates it",
            soft_wrap=True,
        )
        return 0
    if found.problems:
        console.print(
            f"✗ State database {database} is damaged: SQLite's integrity check found: "
            f"{'; '.join(found.problems)}; {restore_advice(database)}",
            style="red",
            markup=False,
            soft_wrap=True,
        )
        return int(ExitCode.USAGE)
    console.print(
        f"[green]✓[/] State database {shown}: SQLite's integrity check found no problem "
        f"(schema version {found.version}; {found.users_linked} users and "
        f"{found.groups_linked} tags linked)",
        soft_wrap=True,
    )
    return 0
