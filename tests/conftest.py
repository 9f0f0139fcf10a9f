"""Shared fixtures: the fake tenants on loopback and a syncd configuration pointing at them."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from syncd.adapters.sqlite import Store
from syncd.app.wiring import sync_once
from syncd.config import Config, load_config
from syncd.cycle.report import CycleReport
from syncd.cycle.run import CycleRequest
from syncd.fakes.generator import Organisation, generate_organisation
from syncd.fakes.graph import FakeGraph
from syncd.fakes.learnster import FakeLearnster

# Hypothesis: `make test` runs a bounded number of examples, with no example database (each
# run stands alone); `make fuzz` (HYPOTHESIS_PROFILE=fuzz) many more, and keeps what fails
# in .hypothesis/ so the next run tries it first. Tests that set max_examples keep theirs.
settings.register_profile(
    "syncd",
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# `make mutate` (HYPOTHESIS_PROFILE=mutate): the same examples on every run, so whether a mutant
# survives does not depend on the luck of the draw.
settings.register_profile(
    "mutate",
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "syncd"))

GRAPH_TOKEN = "graph-test-token"
LEARNSTER_TOKEN = "learnster-test-token"


def write_config(
    directory: Path,
    graph: FakeGraph,
    learnster: FakeLearnster,
    extra: str = "",
    *,
    auth: str = "access_token",
    certificate_path: str | Path | None = None,
) -> Path:
    """A syncd.toml for the two fakes; ``extra`` is appended (more sections)."""
    path = directory / "syncd.toml"
    certificate = f'certificate_path = "{certificate_path}"\n' if certificate_path else ""
    path.write_text(
        f"""
[graph]
tenant_id = "{graph.tenant_id}"
client_id = "{graph.client_id}"
auth = "{auth}"
base_url = "{graph.base_url}"
authority = "{graph.authority}"
ca_file = "{graph.ca_file or ""}"
{certificate}
[learnster]
tenant_url = "{learnster.base_url}"
max_concurrency = 8
timeout_seconds = 10

[state]
database = "{directory / "state.db"}"
{extra}
""",
        encoding="utf-8",
    )
    return path


@dataclass
class Harness:
    """A fake Graph tenant, a fake Learnster and syncd configured against them."""

    graph: FakeGraph
    learnster: FakeLearnster
    config_path: Path
    config: Config

    def sync(self, **kwargs: Any) -> CycleReport:
        """One cycle, the way `syncd sync` runs it (lock held)."""
        store = Store(self.config.state_database)
        try:
            with store.lock():
                return asyncio.run(sync_once(self.config, store, CycleRequest(**kwargs)))
        finally:
            store.close()

    def reconfigure(self, extra: str) -> None:
        self.config_path = write_config(self.config_path.parent, self.graph, self.learnster, extra)
        self.config = load_config(str(self.config_path))

    def edit_config(self, old: str, new: str) -> None:
        text = self.config_path.read_text()
        assert old in text, old
        self.config_path.write_text(text.replace(old, new))
        self.config = load_config(str(self.config_path))

    def scim_requests(self) -> list[Any]:
        return [r for r in self.learnster.requests if r.status]


@pytest.fixture
def make_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Harness]]:
    started: list[FakeGraph | FakeLearnster] = []
    monkeypatch.setenv("SYNCD_GRAPH_ACCESS_TOKEN", GRAPH_TOKEN)
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", LEARNSTER_TOKEN)

    def make(
        org: Organisation | None = None,
        *,
        users: int = 40,
        seed: int = 1,
        extra: str = '[sync]\nphone_default_region = "SE"\n',
        graph_options: dict[str, Any] | None = None,
    ) -> Harness:
        org = org if org is not None else generate_organisation(users, seed=seed)
        graph = FakeGraph(org, access_token=GRAPH_TOKEN, **(graph_options or {})).start()
        started.append(graph)
        learnster = FakeLearnster(token=LEARNSTER_TOKEN).start()
        started.append(learnster)
        path = write_config(tmp_path, graph, learnster, extra)
        return Harness(graph, learnster, path, load_config(str(path)))

    yield make
    for server in reversed(started):
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes

        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    # aiosmtpd logs each connection at INFO from its own thread, possibly after the test's
    # captured stderr (where the command's log handler writes) is closed.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()
