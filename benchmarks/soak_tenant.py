"""The soak's mutator: a thread that changes the tenant and injects faults between cycles.

It works through the fakes' Python API (``FakeGraph``'s mutations and faults, ``FakeLearnster``'s
scripted and random faults), seeded, so a soak with the same seed makes the same changes. After
cycle *k* finished it clears the faults it injected for cycle *k*, makes the changes cycle *k+1*
will read, and, for about ``fault_share`` of the cycles, injects one fault for it.
"""

from __future__ import annotations

import queue
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from syncd.fakes.graph import FakeGraph
from syncd.fakes.learnster import FakeLearnster

# How often each change is drawn: hires and hard deletes alike, so the tenant keeps its size.
CHANGE_WEIGHTS = {
    "add_user": 2,
    "update_user": 4,
    "rename_upn": 1,
    "disable": 1,
    "enable": 1,
    "soft_delete": 1,
    "restore": 1,
    "hard_delete": 2,
    "add_member": 2,
    "remove_member": 2,
    "set_manager": 2,
    "remove_manager": 1,
    "rename_group": 1,
}
FAULT_KINDS = (
    "graph_429_rate",
    "graph_503_rate",
    "graph_failing_page",
    "learnster_429_retry_after",
    "learnster_5xx",
    "learnster_slow",
    "learnster_dropped",
    "learnster_random_mix",
)
TITLES = ("Analyst", "Engineer", "Coordinator", "Specialist", "Lead", "Consultant", "Manager")
OFFICES = (("Stockholm HQ", "Stockholm"), ("Göteborg", "Göteborg"), ("Malmö", "Malmö"))


class Mutator(threading.Thread):
    """Changes and faults between cycles; ``after_cycle(k)`` hands it cycle *k*'s end."""

    def __init__(
        self,
        graph: FakeGraph,
        learnster: FakeLearnster,
        *,
        seed: int,
        changes_per_cycle: int,
        fault_share: float,
    ) -> None:
        super().__init__(name="soak-mutator", daemon=True)
        self.graph = graph
        self.learnster = learnster
        self.rng = random.Random(seed)
        self.changes_per_cycle = changes_per_cycle
        self.fault_share = fault_share
        self.changes: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.errors: list[str] = []
        self.recycled: dict[str, str] = {}  # id -> UPN of the users this moved to the recycle bin
        self.hires = 0
        self._cycles: queue.Queue[int | None] = queue.Queue()

    # -- the thread's side -------------------------------------------------------------------

    def run(self) -> None:
        while (cycle := self._cycles.get()) is not None:
            try:
                self.clear_faults()
                for _ in range(self.changes_per_cycle):
                    self._change()
                if self.rng.random() < self.fault_share:
                    self._inject()
            except Exception as exc:  # a fake refused a change: report it, keep soaking
                self.errors.append(f"after cycle {cycle}: {type(exc).__name__}: {exc}")

    def _change(self) -> None:
        kinds = list(CHANGE_WEIGHTS)
        kind = self.rng.choices(kinds, weights=[CHANGE_WEIGHTS[k] for k in kinds])[0]
        users = self.graph.users
        groups = self.graph.groups
        change: Callable[[list[dict[str, Any]], list[dict[str, Any]]], bool] = getattr(
            self, f"_{kind}"
        )
        if change(users, groups):
            self.changes[kind] += 1
        else:
            self.changes[f"{kind} (nothing to change)"] += 1

    # -- changes: each returns whether it changed something ----------------------------------

    def _enabled(self, users: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [u for u in users if u.get("accountEnabled")]

    def _add_user(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        self.hires += 1
        n = self.hires
        title = self.rng.choice(TITLES)
        office, city = self.rng.choice(OFFICES)
        props: dict[str, Any] = {
            "userPrincipalName": f"soak.hire{n}@{self.graph.tenant_id}",
            "accountEnabled": True,
            "displayName": f"Soak Hire {n}",
            "givenName": "Soak",
            "surname": f"Hire {n}",
            "mailNickname": f"soak.hire{n}",
            "mail": f"soak.hire{n}@{self.graph.tenant_id}",
            "jobTitle": title,
            "officeLocation": office,
            "city": city,
            "country": "Sweden",
            "companyName": "Contoso AB",
            "mobilePhone": f"+46 70 {n % 1000:03d} {n % 100:02d} {(n * 7) % 100:02d}",
        }
        enabled = self._enabled(users)
        if enabled and self.rng.random() < 0.8:
            props["managerId"] = self.rng.choice(enabled)["id"]
        uid = self.graph.add_user(props)
        for group in self.rng.sample(groups, min(len(groups), self.rng.randint(0, 2))):
            self.graph.add_member(group["id"], uid)
        return True

    def _update_user(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        user = self.rng.choice(users)
        what = self.rng.choice(("jobTitle", "office", "mobilePhone", "displayName"))
        if what == "jobTitle":
            self.graph.update_user(user["id"], jobTitle=f"{self.rng.choice(TITLES)} (soak)")
        elif what == "office":
            office, city = self.rng.choice(OFFICES)
            self.graph.update_user(user["id"], officeLocation=office, city=city)
        elif what == "mobilePhone":
            phone = f"+46 73 {self.rng.randrange(1000):03d} {self.rng.randrange(10000):04d}"
            self.graph.update_user(user["id"], mobilePhone=phone)
        else:
            self.graph.update_user(user["id"], displayName=f"{user['displayName']} *")
        return True

    def _rename_upn(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        user = self.rng.choice(users)
        local, _, domain = str(user["userPrincipalName"]).partition("@")
        self.hires += 1  # a number no UPN has had
        self.graph.update_user(user["id"], userPrincipalName=f"{local}.r{self.hires}@{domain}")
        return True

    def _disable(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        enabled = self._enabled(users)
        if not enabled:
            return False
        self.graph.disable_user(self.rng.choice(enabled)["id"])
        return True

    def _enable(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        disabled = [u for u in users if not u.get("accountEnabled")]
        if not disabled:
            return False
        self.graph.enable_user(self.rng.choice(disabled)["id"])
        return True

    def _soft_delete(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        user = self.rng.choice(users)
        self.graph.soft_delete_user(user["id"])
        self.recycled[user["id"]] = str(user["userPrincipalName"])
        return True

    def _restore(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        if not self.recycled:
            return False
        uid = self.rng.choice(sorted(self.recycled))
        self.graph.restore_user(uid)
        del self.recycled[uid]
        return True

    def _hard_delete(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        if self.recycled and self.rng.random() < 0.3:  # for good, from the recycle bin
            uid = self.rng.choice(sorted(self.recycled))
            del self.recycled[uid]
        else:
            uid = self.rng.choice(users)["id"]
        self.graph.hard_delete_user(uid)
        return True

    def _add_member(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        group = self.rng.choice(groups)
        members = set(self.graph.member_ids(group["id"]))
        candidates = [u["id"] for u in users if u["id"] not in members]
        if not candidates:
            return False
        self.graph.add_member(group["id"], self.rng.choice(candidates))
        return True

    def _remove_member(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        user_ids = {u["id"] for u in users}
        group = self.rng.choice(groups)
        members = [m for m in self.graph.member_ids(group["id"]) if m in user_ids]
        if not members:
            return False
        self.graph.remove_member(group["id"], self.rng.choice(members))
        return True

    def _set_manager(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        user, manager = self.rng.sample(users, 2)
        self.graph.set_manager(user["id"], manager["id"])
        return True

    def _remove_manager(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        managed = [u for u in users if self.graph.manager_of(u["id"])]
        if not managed:
            return False
        self.graph.set_manager(self.rng.choice(managed)["id"], None)
        return True

    def _rename_group(self, users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> bool:
        group = self.rng.choice(groups)
        self.hires += 1
        base = str(group["displayName"]).split(" (soak ")[0]
        self.graph.rename_group(group["id"], f"{base} (soak {self.hires})")
        return True

    # -- faults ------------------------------------------------------------------------------

    def _inject(self) -> None:
        kind = self.rng.choice(FAULT_KINDS)
        graph, learnster, rng = self.graph, self.learnster, self.rng
        graph.retry_after_seconds = 1
        if kind == "graph_429_rate":
            graph.fault_rate_429 = 0.3
        elif kind == "graph_503_rate":
            graph.fault_rate_503 = 0.3
        elif kind == "graph_failing_page":
            path = rng.choice(("/users/delta", "/groups/delta"))
            graph.fail_page(path, 1, rng.choice((500, 502, 504)), times=1)
        elif kind == "learnster_429_retry_after":
            learnster.fail_next(rng.randint(1, 3), 429, retry_after=rng.choice((1, 0.5, "1")))
        elif kind == "learnster_5xx":
            learnster.fail_next(rng.randint(1, 3), rng.choice((500, 502, 503)))
        elif kind == "learnster_slow":
            learnster.slow_next(rng.randint(1, 3), seconds=rng.uniform(0.5, 2.0))
        elif kind == "learnster_dropped":
            learnster.drop_next(rng.randint(1, 3))
        else:
            learnster.slow_seconds = 1.0
            learnster.retry_after_seconds = 0.5
            learnster.fault_rate = 0.15
        self.faults[kind] += 1

    def clear_faults(self) -> None:
        """Both fakes answer normally again (scripted faults not yet met are forgotten)."""
        self.graph.clear_faults()
        self.learnster.clear_faults()

    # -- the soak's side ---------------------------------------------------------------------

    def after_cycle(self, cycle: int) -> None:
        """Cycle ``cycle`` finished: clear its faults, change the tenant, maybe inject one."""
        self._cycles.put(cycle)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what was handed over, then clear the faults and end the thread."""
        self._cycles.put(None)
        self.join(timeout)
        self.clear_faults()
