"""The ``syncd`` command line's arguments: every command, its options and their help."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from syncd import __version__
from syncd.app.logs import LEVELS
from syncd.app.state import add_state_commands
from syncd.app.status_log import add_log_options
from syncd.config import LOG_FORMATS
from syncd.errors import ExitCode


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors exit 2, as the contract says
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {message}\n")


class _Version(argparse.Action):
    """``--version``: syncd's version with msgraph-sdk's and Python's, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the versions of syncd, msgraph-sdk and Python, and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        import platform
        from importlib.metadata import PackageNotFoundError, version

        try:
            sdk = f"msgraph-sdk {version('msgraph-sdk')}"
        except PackageNotFoundError:
            sdk = "msgraph-sdk not installed"
        print(f"syncd {__version__} ({sdk}, Python {platform.python_version()})")
        parser.exit()


def _interval(text: str) -> float:
    """``--every``'s SECONDS: a finite number, at least 1 (a cycle needs a moment of its own)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 1")
    return seconds


def _add_cycle_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """run, sync, plan and apply: the commands that run a cycle or plan one."""
    run = commands.add_parser("run", parents=[common], help="the daemon: cycles on the schedule")
    run.add_argument("--now", action="store_true", help="also run one cycle right away")
    run.add_argument(
        "--every",
        type=_interval,
        metavar="SECONDS",
        help="a cycle every SECONDS (>= 1), the first at once, instead of on [schedule] cron: "
        "for soak tests and troubleshooting",
    )

    sync = commands.add_parser("sync", parents=[common], help="run one cycle now")
    sync.add_argument("--full", action="store_true", help="read the whole directory")
    sync.add_argument("--dry-run", action="store_true", help="plan only: send nothing")
    sync.add_argument(
        "--allow-deletions", action="store_true", help="release the deletion guard once"
    )
    sync.add_argument("--json", action="store_true", help="machine-readable report")

    plan = commands.add_parser("plan", parents=[common], help="show what a cycle would send")
    plan.add_argument("--json", action="store_true")
    plan.add_argument("--out", metavar="FILE", help="save the plan as JSON")
    plan.add_argument("--full", action="store_true")

    apply = commands.add_parser("apply", parents=[common], help="apply a reviewed, saved plan")
    apply.add_argument("file", metavar="FILE", help="a plan saved with 'syncd plan --out'")
    apply.add_argument("--allow-deletions", action="store_true")
    apply.add_argument("--json", action="store_true")


def _add_install_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """install: the systemd units and a configuration (syncd/app/install.py, imported on use)."""
    install = commands.add_parser(
        "install",
        parents=[common],
        help="put the systemd units, a configuration and the credentials directory in place "
        "(--config unused)",
        description="Writes the units to ROOT/etc/systemd/system/, the example configuration "
        "to ROOT/etc/syncd/NAME.toml (syncd.toml without --instance) and makes "
        "ROOT/etc/syncd/credentials/[NAME/] (mode 0700). A file that differs from what it "
        "would write is never replaced without --force (exit 2); an identical one is left.",
    )
    install.add_argument(
        "--instance",
        metavar="NAME",
        help="one of several instances: the template units syncd@.service, "
        "syncd-once@.service and syncd-once@.timer, with /etc/syncd/NAME.toml and its state "
        "in /var/lib/syncd/NAME/ (default: the single-instance units syncd.service, "
        "syncd-once.service and syncd.timer)",
    )
    install.add_argument(
        "--root", metavar="DIR", default="/", help="install under DIR instead of / (images)"
    )
    install.add_argument(
        "--force", action="store_true", help="replace files that differ (an edited config too)"
    )
    install.add_argument(
        "--units-only",
        action="store_true",
        help="only the units, keeping the configuration (after upgrading syncd)",
    )
    install.add_argument(
        "--executable",
        metavar="PATH",
        help="the syncd the units run (default: this one, e.g. /opt/syncd/bin/syncd)",
    )


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $SYNCD_CONFIG, else /etc/syncd/syncd.toml)",
    )
    common.add_argument(
        "--log-level",
        type=str.lower,
        choices=LEVELS,
        metavar="LEVEL",
        help="debug, info, warning, error or critical (default: $SYNCD_LOG_LEVEL, else info)",
    )
    common.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        metavar="FORMAT",
        help="log lines on stderr: json (one object per line), text, or auto: JSON under "
        "systemd, text otherwise (default: $SYNCD_LOG_FORMAT, else [logging] format, else auto)",
    )
    parser = Parser(prog="syncd", description="Pull-based Entra ID to Learnster SCIM sync.")
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    _add_cycle_commands(commands, common)

    provision = commands.add_parser(
        "provision", parents=[common], help="provision one user now (UPN or object id)"
    )
    provision.add_argument("user", metavar="USER")
    provision.add_argument("--json", action="store_true")

    status = commands.add_parser("status", parents=[common], help="last cycles and escrows")
    status.add_argument("--json", action="store_true")
    add_log_options(status)
    status.add_argument(
        "--drift",
        action="store_true",
        help="also read Learnster and list changes made there directly to what syncd sent",
    )

    commands.add_parser(
        "check",
        parents=[common],
        help="test the Graph and Learnster connections and the state database's integrity",
    )

    add_state_commands(commands, common)

    reset = commands.add_parser("reset", parents=[common], help="restart provisioning")
    reset.add_argument(
        "--forget-links", action="store_true", help="also forget Learnster ids (re-matched)"
    )

    demo = commands.add_parser(
        "demo", parents=[common], help="run against the built-in fake tenants (--config unused)"
    )
    demo.add_argument("--users", type=int, default=200)
    demo.add_argument("--seed", type=int, default=7)
    _add_install_command(commands, common)
    return parser
