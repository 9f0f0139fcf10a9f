"""`syncd install`: the systemd units and a configuration to start from, for one or several instances.

The files come from the package (``syncd/share/``, package data; ``systemd/`` and ``config/`` in a
checkout are links to them). Without ``--instance`` the single-instance units (``syncd.service``,
``syncd-once.service``, ``syncd.timer``) and ``/etc/syncd/syncd.toml``; with ``--instance NAME``
the template units (``syncd@.service``, ``syncd-once@.service``, ``syncd-once@.timer``, shared by
every instance) and ``/etc/syncd/NAME.toml`` whose ``[state] database`` is in the instance's own
state directory. Nothing is written when any file would replace one that differs, unless forced:
an identical file is left as it is, so running it again is harmless.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TextIO

from syncd.errors import ConfigError

PLAIN_UNITS = ("syncd.service", "syncd-once.service", "syncd.timer")
TEMPLATE_UNITS = ("syncd@.service", "syncd-once@.service", "syncd-once@.timer")
EXAMPLE = "syncd.example.toml"
# What the shipped units run; an installed unit runs the syncd that installed it instead.
SHIPPED_EXECUTABLE = "/opt/syncd/bin/syncd"
# The instance name becomes part of unit, file and directory names (syncd@NAME.service,
# /etc/syncd/NAME.toml, /var/lib/syncd/NAME): characters systemd never escapes, no leading '-'
# or '.', and short enough for a unit name.
_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# What ExecStart= takes as a plain path: no spaces, quotes, '%' specifiers or '$' variables.
_EXECUTABLE = re.compile(r"/[A-Za-z0-9/._+@,:~-]+")
_DATABASE_LINE = re.compile(r'^database = "[^"\n]*"', re.MULTILINE)
# Where a hardened unit cannot see its executable (ProtectHome=yes, PrivateTmp=yes).
_HIDDEN = ("/home/", "/root/", "/run/user/", "/tmp/", "/var/tmp/")  # noqa: S108 - compared with


def shipped_file(name: str) -> str:
    """The text of a file syncd ships: a unit, or ``syncd.example.toml``."""
    folder = "config" if name == EXAMPLE else "systemd"
    return (files("syncd") / "share" / folder / name).read_text(encoding="utf-8")


def check_instance(name: str) -> str:
    if not _INSTANCE.fullmatch(name):
        raise ConfigError(
            f"--instance {name!r} cannot name an instance: use 1 to 64 letters, digits, '-', '_' "
            "or '.', starting with a letter or a digit (it names syncd@NAME.service, "
            "/etc/syncd/NAME.toml and /var/lib/syncd/NAME)"
        )
    if name == "syncd":
        raise ConfigError(
            "--instance 'syncd' would share /etc/syncd/syncd.toml with the single-instance "
            "units: choose another name, or install without --instance for one instance"
        )
    return name


def running_executable() -> Path:
    """The ``syncd`` command of the environment this process runs from.

    The console script as the shell found it (a pipx link resolved to the script in pipx's
    venv); under ``python -m syncd``, the script the same interpreter installed.
    """
    invoked = Path(sys.argv[0])
    if invoked.name == "syncd" and invoked.is_file():
        return invoked.resolve()
    for scripts in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = Path(scripts) / "syncd"
        if candidate.is_file():
            return candidate.absolute()
    raise ConfigError(
        f"cannot tell where this environment's syncd command is ({sys.executable} runs "
        "syncd, but no syncd script is beside it): pass --executable PATH"
    )


def check_executable(path: str) -> str:
    if not _EXECUTABLE.fullmatch(path):
        raise ConfigError(
            f"--executable {path!r}: the units' ExecStart= needs an absolute path of letters, "
            "digits and / . _ - + @ , : ~ (no spaces, quotes, '%' or '$')"
        )
    return path


def unit_text(name: str, executable: str) -> str:
    text = shipped_file(name)
    # tests/test_install.py installs every shipped unit: this guards a later edit of one.
    if name.endswith(".service") and SHIPPED_EXECUTABLE not in text:  # pragma: no cover
        raise RuntimeError(f"the shipped {name} does not run {SHIPPED_EXECUTABLE}")
    return text.replace(SHIPPED_EXECUTABLE, executable)


def config_text(instance: str | None) -> str:
    """The example configuration; an instance's with its own state database and a header."""
    text = shipped_file(EXAMPLE)
    if instance is None:
        return text
    database = f'database = "/var/lib/syncd/{instance}/state.db"'
    text, found = _DATABASE_LINE.subn(database, text, count=1)
    if not found:  # pragma: no cover - tests/test_install.py reads the written file
        raise RuntimeError(f"the shipped {EXAMPLE} has no [state] database line")
    header = (
        f"# Instance {instance}: read by syncd@{instance}.service and syncd-once@{instance}.service"
        f" (syncd install --instance {instance}).\n"
        f"# Its state is in /var/lib/syncd/{instance}/ (the units' StateDirectory), its secrets in "
        f"/etc/syncd/credentials/{instance}/.\n"
    )
    return header + text


def config_path(instance: str | None) -> str:
    """Where the instance's configuration is, on the installed system."""
    return f"/etc/syncd/{instance or 'syncd'}.toml"


def credentials_dir(instance: str | None) -> str:
    """Where the units' ``LoadCredential=`` read the instance's secrets."""
    return "/etc/syncd/credentials" + (f"/{instance}" if instance else "")


@dataclass(frozen=True)
class Item:
    """One file (``text``) or directory (``text`` is None) the installation puts in place."""

    target: str  # the path on the installed system
    text: str | None
    mode: int


def layout(instance: str | None, executable: str, *, units_only: bool = False) -> list[Item]:
    """What ``syncd install`` puts in place, in order: the units, the configuration, the
    credentials directory (``units_only``: the units alone, to update them after an upgrade)."""
    units = TEMPLATE_UNITS if instance else PLAIN_UNITS
    items = [Item(f"/etc/systemd/system/{u}", unit_text(u, executable), 0o644) for u in units]
    if not units_only:
        items.append(Item(config_path(instance), config_text(instance), 0o644))
        items.append(Item(credentials_dir(instance), None, 0o700))
    return items


def _same(path: Path, text: str) -> bool:
    try:
        return path.is_file() and path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False


def _conflict(path: Path, item: Item) -> tuple[str, bool] | None:
    """Why putting ``item`` at ``path`` would replace something different (and whether
    --force may replace it), or None."""
    exists = path.exists() or path.is_symlink()
    if item.text is None:
        if not exists:
            return None
        if not path.is_dir():
            return f"{path} exists and is not a directory", False
        mode = path.stat().st_mode & 0o777
        return (
            None
            if mode == item.mode
            else (f"{path} has mode {mode:04o}, not {item.mode:04o}", True)
        )
    if not exists or _same(path, item.text):
        return None
    if path.is_dir():
        return f"{path} is a directory", False
    return f"{path} differs from what syncd install writes", True


def _put(path: Path, item: Item) -> str:
    """Put ``item`` at ``path``; what was done."""
    if item.text is None:
        if path.is_dir():
            if path.stat().st_mode & 0o777 == item.mode:
                return "unchanged"
            path.chmod(item.mode)
            return f"mode set to {item.mode:04o}"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # /etc/syncd/credentials
        path.mkdir(mode=item.mode)
        path.chmod(item.mode)  # whatever the umask took away
        return f"created, mode {item.mode:04o}"
    if _same(path, item.text):
        return "unchanged"
    existed = path.exists() or path.is_symlink()
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.syncd-install")
    temporary.write_text(item.text, encoding="utf-8")
    temporary.chmod(item.mode)
    os.replace(temporary, path)  # a link in its place is replaced, not written through
    return "replaced" if existed else "written"


def install(root: Path, items: list[Item], *, force: bool = False) -> list[tuple[Path, str]]:
    """Put ``items`` under ``root``: all of them, or (on a conflict, unless forced) none."""
    found = [(item, c) for item in items if (c := _conflict(root / item.target.lstrip("/"), item))]
    blocking = [reason for _, (reason, forceable) in found if not (force and forceable)]
    if blocking:
        edited = any(item.text is not None and item.target.endswith(".toml") for item, _ in found)
        raise ConfigError(
            "refusing to replace what is there: "
            + "; ".join(blocking)
            + ". Nothing was written. Compare, then run again with --force to replace "
            + ("them" if len(blocking) > 1 else "it")
            + (
                ", or with --units-only to update the units and keep the configuration"
                if edited
                else ""
            )
        )
    done = []
    for item in items:
        path = root / item.target.lstrip("/")
        try:
            done.append((path, _put(path, item)))
        except OSError as exc:
            raise ConfigError(
                f"cannot install {path}: {exc.strerror}"
                + (f" (installed before it: {', '.join(str(p) for p, _ in done)})" if done else "")
            ) from None
    return done


def next_steps(instance: str | None, units_only: bool) -> list[str]:
    """What the operator does after the files are in place."""
    daemon = f"syncd@{instance}.service" if instance else "syncd.service"
    timer = f"syncd-once@{instance}.timer" if instance else "syncd.timer"
    if units_only:
        return [
            "systemctl daemon-reload",
            f"systemctl try-restart {daemon}    # if the daemon runs; a timer's next cycle "
            "uses the new units by itself",
        ]
    secrets = credentials_dir(instance)
    return [
        f"# 1. fill in [graph] tenant_id, client_id and [learnster] tenant_url in {config_path(instance)}",
        "# 2. the secrets, never in the TOML (auth = client_secret; see the file's [graph]):",
        f"printf %s 'CLIENT-SECRET-VALUE'    > {secrets}/graph-client-secret",
        f"printf %s 'LEARNSTER-SECRET-TOKEN' > {secrets}/learnster-token",
        f"chmod 0600 {secrets}/*",
        "# 3. let systemd read the units, then start the nightly cycle from its timer:",
        "systemctl daemon-reload",
        f"systemctl enable --now {timer}",
        f"# or the resident daemon instead (cycles on [schedule] cron): systemctl enable --now "
        f"{daemon}",
    ]


def run_install(
    instance: str | None,
    root: str,
    *,
    force: bool = False,
    units_only: bool = False,
    executable: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``syncd install``: put the files in place, say what was done and what comes next."""
    out, err = out or sys.stdout, err or sys.stderr
    name = check_instance(instance) if instance is not None else None
    command = check_executable(executable or str(running_executable()))
    if command.startswith(_HIDDEN):
        print(
            f"syncd install: warning: the units run {command}, which the hardened units cannot "
            "see (ProtectHome=yes, PrivateTmp=yes): install syncd under /opt or /usr/local, "
            "or pass --executable",
            file=err,
        )
    done = install(Path(root), layout(name, command, units_only=units_only), force=force)
    what = f"instance {name}" if name else "one instance"
    print(f"syncd install ({what}; the units run {command}):", file=out)
    for path, action in done:
        print(f"  {action:<22} {path}", file=out)
    if Path(root).resolve() != Path("/"):
        print(f"Next, on the system whose root is {root}:", file=out)
    else:
        print("Next:", file=out)
    for line in next_steps(name, units_only):
        print(f"  {line}", file=out)
    return 0
