"""syncd's one exception tree: each class says what went wrong, the exit code and how to recover.

Every layer raises these and every caller (the cycle, ``provision``, ``check``, the daemon's
health) reads ``exit_code``, ``health`` and ``recovery`` from the class instead of re-labelling
errors. The tree and the precedence of exit codes are described in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from enum import Enum, IntEnum, StrEnum


class ExitCode(IntEnum):
    """Process exit codes; part of syncd's command-line contract."""

    OK = 0
    PARTIAL = 1  # finished, some objects failed and are in retry
    USAGE = 2  # usage or configuration error
    GUARD = 3  # stopped by a safety guard
    AUTH = 4  # authentication or connection failure, or a Graph read that did not complete
    LOCKED = 5  # another cycle holds the lock


class Health(StrEnum):
    """The state a cycle leaves syncd in: logged, mailed and exported when it changes."""

    OK = "ok"
    PARTIAL = "partial"  # some objects failed and are in retry
    GUARD = "guard"  # the deletion guard holds removals
    QUARANTINE = "quarantine"  # most SCIM requests failed: the rest were not sent
    CREDENTIALS = "credentials"  # a secret, certificate or token was refused
    PERMISSIONS = "permissions"  # signed in, but not allowed to read or write this
    CONNECTION = "connection"  # Graph or Learnster could not be reached (or is not SCIM there)
    GRAPH = "graph"  # Graph answered a read with an error: not a credentials problem
    CONFIG = "config"  # the configuration is not usable
    STATE = "state"  # the state database is damaged, unwritable, full or from a newer syncd


class Recovery(Enum):
    """What failing this way means for the one object an operation is about."""

    STOP_CYCLE = "stop the cycle"  # nothing else can succeed either
    RETRY_LATER = "retry later"  # transient: escrowed with a backoff
    FORGET_LINK = "forget the link"  # the object is gone in Learnster
    ADOPT = "adopt"  # the object exists in Learnster already: look it up and link it
    FAIL_OBJECT = "fail the object"  # refused: it waits in escrow, the others go on


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""

    exit_code: ExitCode = ExitCode.PARTIAL
    health: Health | None = Health.PARTIAL  # None: says nothing about health (a busy lock)
    recovery: Recovery = Recovery.FAIL_OBJECT


class ConfigError(SyncdError):
    """The configuration or the command line is wrong; names the key and says how to fix it."""

    exit_code = ExitCode.USAGE
    health = Health.CONFIG
    recovery = Recovery.STOP_CYCLE


class StateError(ConfigError):
    """The state database cannot be used: damaged, truncated, unwritable, full, or newer.

    The message names the file and what to do. A ConfigError (exit 2, the cycle stops) so that
    every caller that stops on an unusable set-up stops on it too; see docs/ARCHITECTURE.md.
    """

    health = Health.STATE

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message  # what is wrong, without the file's name or advice


class LockHeld(SyncdError):
    """Another cycle holds the state directory's lock."""

    exit_code = ExitCode.LOCKED
    health = None
    recovery = Recovery.STOP_CYCLE


# -- the whole cycle stops -------------------------------------------------------------------


class StopCycle(SyncdError):
    """Credentials or connectivity make going on pointless: stop the whole cycle (exit 4)."""

    exit_code = ExitCode.AUTH
    health = Health.CONNECTION
    recovery = Recovery.STOP_CYCLE


class CredentialsRefused(StopCycle):
    """Graph, Entra's sign-in or Learnster refused syncd's secret, certificate or token."""

    health = Health.CREDENTIALS


class PermissionDenied(StopCycle):
    """Signed in, but the app registration or the Secret Token lacks a permission."""

    health = Health.PERMISSIONS


class Unreachable(StopCycle):
    """Graph or Learnster could not be reached, or answers at that URL are not its API."""

    health = Health.CONNECTION


# -- the directory read ----------------------------------------------------------------------


class GraphReadError(SyncdError):
    """Graph answered a read with an error, or with something that is not a Graph page.

    The read did not complete, so nothing that removes may be planned from it (exit 4). It is
    not about credentials: ``status`` and ``code`` are Graph's, for whoever calls Microsoft.
    """

    exit_code = ExitCode.AUTH
    health = Health.GRAPH
    recovery = Recovery.STOP_CYCLE

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class DeltaTokenExpired(GraphReadError):
    """Graph no longer knows the delta token (410 / syncStateNotFound): read everything again."""


# -- one SCIM request ------------------------------------------------------------------------


class ScimError(SyncdError):
    """A SCIM request failed for one object; ``status`` is the HTTP status (0: transport)."""

    def __init__(
        self, message: str, *, status: int = 0, detail: str = "", scim_type: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


class TransientError(ScimError):
    """Throttling, server errors, timeouts, dropped connections: retried, then escrowed."""

    recovery = Recovery.RETRY_LATER

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        unreachable: bool = False,
        status: int = 0,
        detail: str = "",
    ) -> None:
        super().__init__(message, status=status, detail=detail)
        self.retry_after = retry_after
        # The connection was refused: once the retries are spent, Learnster is down
        # (the sink raises Unreachable then).
        self.unreachable = unreachable


class NotFoundError(ScimError):
    """The object is gone in Learnster: forget the link and re-match or re-create it."""

    recovery = Recovery.FORGET_LINK


class ConflictError(ScimError):
    """The object already exists (409 on create): look it up and adopt it."""

    recovery = Recovery.ADOPT


class RejectedError(ScimError):
    """Learnster refused this object (400 and other 4xx): it fails alone, with the detail kept."""


class BadResponseError(ScimError):
    """Learnster answered with something that is not the SCIM it promised."""


class AlreadyLinked(ScimError):
    """The Learnster user that matches is already linked to another directory user."""


class AmbiguousMatch(ScimError):
    """More than one Learnster user matches one directory user: neither is adopted."""
