"""Provision on demand: one user through the cycle's own stages now, with its manager and tags.

The stages are those of a cycle (scope, targets, plan, apply), run over a small snapshot read
for this user alone: the user, their manager when Learnster lacks them, and their groups.
Nothing is removed: that is the scheduled cycle's job.
"""

from __future__ import annotations

import logging

from syncd.adapters.graph import GraphSource
from syncd.adapters.scim import ScimSink
from syncd.adapters.sqlite import Store
from syncd.config import Config
from syncd.core.decode import decode_user
from syncd.core.mapping import MappingOptions, selected_attributes
from syncd.core.planner import PlanOptions, plan
from syncd.core.records import (
    DirectoryGroup,
    DirectoryUser,
    Entry,
    GroupSnapshot,
    Presence,
    user_select,
)
from syncd.core.scope import ScopeRules, compute_scope, resolve_scope_groups
from syncd.core.snapshot import labels_of
from syncd.core.targets import build_targets
from syncd.cycle.apply import Applier
from syncd.cycle.context import cycle_context
from syncd.cycle.report import CycleReport
from syncd.errors import ConfigError, ExitCode, GraphReadError, StopCycle

log = logging.getLogger("syncd.provision")


async def _directory_user(source: GraphSource, key: str, config: Config) -> DirectoryUser:
    attributes = [
        *config.scope.filter_attributes,
        *selected_attributes(config.user_mapping_overrides),
    ]
    raw = await source.get_user(key, select=user_select(attributes))
    if raw is None:
        raise ConfigError(f"no user {key!r} in the directory (give a UPN or an object id)")
    decoded = decode_user(raw)
    if decoded.user is None:
        raise ConfigError("; ".join(str(p) for p in decoded.problems))
    return decoded.user


async def provision(config: Config, store: Store, key: str) -> CycleReport:
    """Create or update ``key`` (UPN or object id) in Learnster now, as a cycle would.

    Its manager is provisioned first when Learnster does not have them yet (and they are in
    scope), and the user is added to the tags of its groups.
    """
    report = CycleReport(mode="provision")
    source = GraphSource(config)
    try:
        await _provision(config, store, source, key, report)
    except (StopCycle, GraphReadError) as exc:
        report.exit_code, report.health, report.message = exc.exit_code, exc.health, str(exc)
    finally:
        report.graph_requests = source.requests
        await source.aclose()
    return report


async def _provision(
    config: Config, store: Store, source: GraphSource, key: str, report: CycleReport
) -> None:
    user = await _directory_user(source, key, config)
    ledger_users = store.ledger.users()
    people = [user]
    if user.manager_id and user.manager_id not in ledger_users:
        people.insert(0, await _directory_user(source, user.manager_id, config))
    users = {p.id: Entry(p, Presence.PRESENT) for p in people}
    groups, direct = await _groups_of(config, source, people, user)
    rules = await _rules(config, source, groups)
    scope = compute_scope(users, groups, rules)
    scope.groups &= direct  # tags hold direct members only
    if user.id not in scope.users:
        named = f" ({', '.join(config.scope.groups)})" if config.scope.mode == "groups" else ""
        raise ConfigError(
            f"{user.user_principal_name} {rules.why_out(user.id, users, groups)}{named}: "
            "not provisioned"
        )
    if user.manager_id in ledger_users:
        scope.users.add(user.manager_id)  # exists in Learnster: the manager rides along
    report.labels = labels_of(users, groups)
    targets = build_targets(
        users,
        groups,
        scope,
        {uid: ledger_users[uid] for uid in users if uid in ledger_users},
        MappingOptions(config.sync.phone_default_region, config.user_mapping_overrides),
    )
    report.problems.extend(targets.problems)
    ledger_groups = store.ledger.groups_for(targets.groups)
    report.plan = plan(
        targets.users,
        {uid: ledger_users[uid] for uid in targets.users if uid in ledger_users},
        targets.groups,
        ledger_groups,
        PlanOptions(allow_removals=False, member_batch_size=config.sync.member_batch_size),
        linked_users=set(ledger_users),
    )
    if not len(report.plan):
        report.message = f"{user.user_principal_name} is already up to date in Learnster"
        return
    await _apply(config, store, report)


async def _groups_of(
    config: Config, source: GraphSource, people: list[DirectoryUser], user: DirectoryUser
) -> tuple[GroupSnapshot, set[str]]:
    """The groups of ``people`` as a small snapshot (each listing those of them it has), and
    the groups ``user`` is a direct member of (tags hold direct members only)."""
    nested_scope = config.scope.nested and config.scope.mode != "all"
    members: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    direct: set[str] = set()
    for person in people:
        if person is not user and config.scope.mode == "all":
            continue  # in scope anyway; a manager's own tags wait for the scheduled cycle
        for transitive in (False, True) if nested_scope else (False,):
            for gid, name in await source.member_groups(person.id, transitive=transitive):
                names[gid] = name
                members.setdefault(gid, set()).add(person.id)
                if person is user and not transitive:
                    direct.add(gid)
    groups = {
        gid: Entry(DirectoryGroup(gid, names[gid], frozenset(ids)), Presence.PRESENT)
        for gid, ids in members.items()
    }
    return groups, direct


async def _rules(config: Config, source: GraphSource, groups: GroupSnapshot) -> ScopeRules:
    """The scope's rules over the groups read; with nested groups they are the transitive ones
    already, so nesting is not followed again."""
    scope = config.scope
    scope_groups: set[str] = set()
    assigned: frozenset[str] = frozenset()
    if scope.mode == "groups":
        scope_groups, _ = resolve_scope_groups(scope.groups, groups)
    elif scope.mode == "assigned":
        assignments = await source.assignments(scope.application)
        scope_groups, assigned = set(assignments.groups), assignments.users
    return ScopeRules(
        mode=scope.mode,
        scope_groups=frozenset(scope_groups),
        assigned_users=assigned,
        sync_groups=scope.effective_sync_groups,
        filters=scope.filters,
    )


async def _apply(config: Config, store: Store, report: CycleReport) -> None:
    async with ScimSink.from_config(config) as sink:
        run_id = report.run_id = store.runs.start("provision", False, config.state_log_days)
        applier = Applier(
            sink,
            store.ledger,
            store.runs,
            report.labels,
            run_id=run_id,
            match_by=config.sync.match_by,
            batch_size=config.sync.member_batch_size,
        )
        with cycle_context(run_id):
            phases = list(report.plan.phases)
            result = await applier.apply(phases, config.learnster.max_concurrency)
        report.absorb(result)
        if result.stopped is not None:
            report.exit_code, report.health = result.stopped.exit_code, result.stopped.health
            report.message = str(result.stopped)
        elif report.failures:
            report.exit_code = ExitCode.PARTIAL
        counts = {kind: dict(c) for kind, c in report.outcomes.items()}
        store.runs.finish(run_id, counts, int(report.exit_code), report.summary())
