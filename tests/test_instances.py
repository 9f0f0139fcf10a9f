"""Two instances on one host (issue 17's "must show"): `syncd install --instance` for each, then
both cycles at the same time, each with its own tenant, Learnster, secrets, state, lock, metrics.

Each instance runs as its template unit would run it: `syncd sync --config /etc/syncd/NAME.toml`
with ``CREDENTIALS_DIRECTORY`` holding the two files the unit's ``LoadCredential=`` lines read
(a client secret over the real client-credentials flow, over TLS, and the Secret Token), and its
state where the unit's ``StateDirectory=syncd/NAME`` puts it (here under a temporary root).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from syncd.adapters.sqlite import Store
from syncd.app.cli import main
from syncd.fakes.generator import Organisation, generate_organisation
from syncd.fakes.graph import FakeGraph
from syncd.fakes.learnster import FakeLearnster

SYNCD = str(Path(sys.executable).parent / "syncd")
TENANTS = {"acme": 12, "globex": 9}  # users; small, so both cycles are short


def set_key(text: str, section: str, key: str, value: str) -> str:
    """``key = value`` (a TOML string) in ``[section]``, replacing the line or adding it."""
    header = re.search(rf"^\[{re.escape(section)}\][^\n]*\n", text, re.MULTILINE)
    assert header, section
    end = re.compile(r"^\[", re.MULTILINE).search(text, header.end())
    body = text[header.end() : end.start() if end else len(text)]
    line = f"{key} = {json.dumps(value)}\n"
    new, found = re.subn(rf"^{key} = [^\n]*\n", line, body, count=1, flags=re.MULTILINE)
    new = new if found else line + body
    return text[: header.end()] + new + text[header.end() + len(body) :]


def configure(root: Path, name: str, graph: FakeGraph, learnster: FakeLearnster) -> Path:
    """The installed /etc/syncd/NAME.toml pointed at this instance's fakes, its state re-rooted."""
    config = root / "etc/syncd" / f"{name}.toml"
    text = config.read_text()
    installed = tomllib.loads(text)["state"]["database"]
    assert installed == f"/var/lib/syncd/{name}/state.db"
    state_dir = root / f"var/lib/syncd/{name}"  # StateDirectory=syncd/%i makes it, mode 0700
    state_dir.mkdir(mode=0o700, parents=True)
    for section, key, value in (
        ("graph", "tenant_id", graph.tenant_id),
        ("graph", "client_id", graph.client_id),
        ("graph", "base_url", graph.base_url),
        ("graph", "authority", graph.authority),
        ("graph", "ca_file", graph.ca_file or ""),
        ("learnster", "tenant_url", learnster.base_url),
        ("state", "database", str(root / installed.lstrip("/"))),
        ("metrics", "textfile", str(state_dir / "syncd.prom")),
    ):
        text = set_key(text, section, key, value)
    config.write_text(text)
    return config


def enabled_user_names(org: Organisation) -> set[str]:
    return {u["userPrincipalName"].lower() for u in org.users if u.get("accountEnabled")}


def held_locks() -> set[int]:
    """Inodes of the files flock()ed on this machine right now."""
    text = Path("/proc/locks").read_text()
    return {
        int(m) for m in re.findall(r"FLOCK\s+\S+\s+\S+\s+\d+\s+[0-9a-f]+:[0-9a-f]+:(\d+)", text)
    }


def watch_both_locks(processes: list[subprocess.Popen[str]], locks: list[Path]) -> bool:
    """Poll until the processes end; whether both cycle locks were ever held at one moment."""
    both = False
    while any(p.poll() is None for p in processes):
        inodes = [lock.stat().st_ino for lock in locks if lock.exists()]
        if len(inodes) == 2 and set(inodes) <= held_locks():
            both = True
        time.sleep(0.01)
    return both


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_two_instances_sync_at_the_same_time_each_with_only_its_own_tenant(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    for name in TENANTS:
        assert main(["install", "--instance", name, "--root", str(root)]) == 0
    orgs = {
        name: generate_organisation(users, seed=n + 3, domain=f"{name}.example")
        for n, (name, users) in enumerate(TENANTS.items())
    }
    graphs = {
        name: FakeGraph(
            org, tenant_id=f"{name}.example", tls=True, client_secret=f"{name}-graph-secret"
        ).start()
        for name, org in orgs.items()
    }
    # Learnster's latency keeps each cycle sending for a while, so the two surely overlap.
    learnsters = {
        name: FakeLearnster(token=f"{name}-learnster-token", latency_ms=150).start()
        for name in TENANTS
    }
    try:
        processes, configs = [], {}
        for name in TENANTS:
            configs[name] = configure(root, name, graphs[name], learnsters[name])
            credentials = root / "etc/syncd/credentials" / name
            (credentials / "graph-client-secret").write_text(f"{name}-graph-secret")
            (credentials / "learnster-token").write_text(f"{name}-learnster-token")
        for name in TENANTS:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
            env["CREDENTIALS_DIRECTORY"] = str(root / "etc/syncd/credentials" / name)
            env["SYNCD_CONFIG"] = str(configs[name])
            command = [SYNCD, "sync", "--json", "--config", str(configs[name])]
            processes.append(
                subprocess.Popen(
                    command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            )
        state = {name: root / f"var/lib/syncd/{name}" for name in TENANTS}
        overlapped = watch_both_locks(processes, [d / "state.db.lock" for d in state.values()])
        results = [p.communicate(timeout=120) for p in processes]
        for name, process, (out, err) in zip(TENANTS, processes, results, strict=True):
            assert process.returncode == 0, f"{name}: {out}\n{err}"
        assert overlapped, "the two cycles never held their locks at the same moment"

        for name, learnster in learnsters.items():
            got = {u["userName"].lower() for u in learnster.users.values()}
            assert got == enabled_user_names(orgs[name]), name
            assert all(r.status != 401 for r in learnster.requests), name
        assert not {u["userName"] for u in learnsters["acme"].users.values()} & {
            u["userName"] for u in learnsters["globex"].users.values()
        }

        for name, directory in state.items():
            assert sorted(
                p.name for p in directory.iterdir() if not p.name.endswith(("-wal", "-shm"))
            ) == [
                "state.db",
                "state.db.lock",
                "syncd.prom",
            ]
            store = Store(str(directory / "state.db"))
            try:
                linked = {u.scim_id for u in store.ledger.users().values()}
                snapshot_users = store.counts()["users_linked"]
            finally:
                store.close()
            assert linked == set(learnsters[name].users), name
            assert snapshot_users == len(enabled_user_names(orgs[name]))
            metrics = (directory / "syncd.prom").read_text()
            assert f'syncd_linked_objects{{kind="user"}} {len(linked)}.0' in metrics, name
        assert (state["acme"] / "state.db").stat().st_ino != (
            state["globex"] / "state.db"
        ).stat().st_ino
    finally:
        for server in (*graphs.values(), *learnsters.values()):
            server.stop()
