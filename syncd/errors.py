"""syncd's exception tree and the exit codes of DESIGN §2, one meaning per class."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; part of the contract (DESIGN §2)."""

    OK = 0
    PARTIAL = 1  # finished, some objects failed and are in retry
    USAGE = 2  # usage or configuration error
    GUARD = 3  # stopped by a safety guard
    AUTH = 4  # authentication or connection failure
    LOCKED = 5  # another cycle holds the lock


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""

    exit_code: ExitCode = ExitCode.PARTIAL


class ConfigError(SyncdError):
    """The configuration or the command line is wrong; names the key and says how to fix it."""

    exit_code = ExitCode.USAGE


class StopCycle(SyncdError):
    """Credentials or connectivity make going on pointless: stop the whole cycle (exit 4)."""

    exit_code = ExitCode.AUTH


class LockHeld(SyncdError):
    """Another cycle holds the state directory's lock."""

    exit_code = ExitCode.LOCKED


class SourceError(SyncdError):
    """The directory read did not complete; nothing that removes may be planned from it."""


class GuardTripped(SyncdError):
    """A safety guard held back removals."""

    exit_code = ExitCode.GUARD
