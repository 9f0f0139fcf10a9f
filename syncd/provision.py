"""Provision on demand: one user through the whole path now, with its manager and its tags."""

from __future__ import annotations

import logging

from syncd.config import Config
from syncd.engine import Applier, CycleReport
from syncd.errors import ConfigError, ExitCode, StopCycle
from syncd.mapping import MANAGER, MappingOptions, map_user
from syncd.model import DirectoryGroup, DirectoryUser, decode_user
from syncd.planner import GroupTarget, PlanOptions, UserTarget, plan
from syncd.sink import ScimSink
from syncd.snapshot import resolve_scope_groups
from syncd.source import GraphSource
from syncd.store import Store

log = logging.getLogger("syncd.provision")


async def _directory_user(source: GraphSource, key: str) -> DirectoryUser:
    raw = await source.get_user(key)
    if raw is None:
        raise ConfigError(f"no user {key!r} in the directory (give a UPN or an object id)")
    decoded = decode_user(raw)
    if decoded.user is None:
        raise ConfigError("; ".join(str(p) for p in decoded.problems))
    return decoded.user


async def provision(config: Config, store: Store, key: str) -> CycleReport:
    """Create or update ``key`` (UPN or object id) in Learnster now, as a cycle would.

    Its manager is provisioned first when Learnster does not have them yet, and the user is
    added to the tags of its groups. Nothing is removed: that is the scheduled cycle's job.
    """
    report = CycleReport(mode="provision")
    source = GraphSource(config)
    try:
        user = await _directory_user(source, key)
        groups = await source.member_groups(user.id, transitive=config.scope.nested)
        ledger_users = store.ledger_users()
        ledger_groups = store.ledger_groups()
        if config.scope.mode == "groups":
            scope_ids, _ = resolve_scope_groups(
                config.scope.groups, {gid: (_group(gid, name), None) for gid, name in groups}
            )
            if not scope_ids:
                raise ConfigError(
                    f"{user.user_principal_name} is not a member of any [scope] group "
                    f"({', '.join(config.scope.groups)}): not provisioned"
                )
        people = [user]
        if user.manager_id and user.manager_id not in ledger_users:
            people.insert(0, await _directory_user(source, user.manager_id))
        options = MappingOptions(config.sync.phone_default_region, config.user_mapping_overrides)
        targets: dict[str, UserTarget] = {}
        for person in people:
            attrs, problems = map_user(person, options)
            report.problems.extend(problems)
            manager = attrs.get(MANAGER)
            if (
                manager is not None
                and manager not in ledger_users
                and manager not in {p.id for p in people}
            ):
                del attrs[MANAGER]  # a later cycle links a manager that is not provisioned yet
            targets[person.id] = UserTarget(attrs)
        tags = _tags_for(config, groups)
        group_targets = {
            gid: GroupTarget(
                name,
                (ledger_groups[gid].members if gid in ledger_groups else frozenset()) | {user.id},
            )
            for gid, name in tags
        }
        report.plan = plan(
            targets,
            {uid: ledger_users[uid] for uid in targets if uid in ledger_users},
            group_targets,
            {gid: ledger_groups[gid] for gid in group_targets if gid in ledger_groups},
            PlanOptions(allow_removals=False, member_batch_size=config.sync.member_batch_size),
        )
        report.labels = {p.id: p.user_principal_name for p in people} | dict(tags)
        report.graph_requests = source.requests
        if not len(report.plan):
            report.message = f"{user.user_principal_name} is already up to date in Learnster"
            return report
        async with ScimSink.from_config(config) as sink:
            run_id = store.start_run("provision", False)
            applier = Applier(
                sink, store, report, report.labels, config.sync.member_batch_size, run_id=run_id
            )
            await applier.apply(list(report.plan.phases), config.learnster.max_concurrency)
            counts = {kind: dict(c) for kind, c in report.outcomes.items()}
            store.finish_run(run_id, counts, int(report.exit_code), report.summary())
            report.scim_requests = dict(sink.requests)
        if report.failures:
            report.exit_code = ExitCode.PARTIAL
    except StopCycle as exc:
        report.exit_code = ExitCode.AUTH
        report.message = str(exc)
    finally:
        await source.aclose()
    return report


def _group(gid: str, name: str) -> DirectoryGroup:
    return DirectoryGroup(gid, name)


def _tags_for(config: Config, groups: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The user's groups that are Learnster tags under ``[scope] sync_groups``."""
    mode = config.scope.effective_sync_groups
    if mode == "none":
        return []
    if mode == "scope":
        scope_ids, _ = resolve_scope_groups(
            config.scope.groups, {gid: (_group(gid, name), None) for gid, name in groups}
        )
        return [(gid, name) for gid, name in groups if gid in scope_ids]
    return groups
