"""Command line for the fakes: ``python -m syncd.fakes graph|learnster ...``."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m syncd.fakes",
        description="Serve a fake tenant on 127.0.0.1. The first line of stdout is its base URL; "
        "it serves until SIGTERM or SIGINT.",
    )
    sub = parser.add_subparsers(dest="service", required=True)

    graph = sub.add_parser("graph", help="fake Microsoft Graph v1.0 with a generated organisation")
    graph.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    graph.add_argument("--users", type=int, default=200, help="number of users to generate")
    graph.add_argument("--groups", type=int, default=None, help="number of groups to generate")
    graph.add_argument(
        "--memberships-per-user",
        "--memberships",
        type=float,
        default=2.5,
        help="average direct group memberships of a user",
    )
    graph.add_argument("--seed", type=int, default=1, help="generator seed")
    graph.add_argument("--token", default=None, help="a bearer token accepted as-is")
    graph.add_argument("--tenant-id", default="contoso.example")
    graph.add_argument("--client-id", default="11111111-1111-1111-1111-111111111111")
    graph.add_argument(
        "--client-secret", default="graph-secret", help="secret the token endpoint accepts"
    )
    graph.add_argument(
        "--client-certificate",
        help="PEM file of a certificate registered for the app (a key beside it is ignored)",
    )
    graph.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a throwaway CA; its PEM path is printed as 'ca_file=...' on line 2",
    )
    graph.add_argument("--delta-page-size", type=int, default=200)
    graph.add_argument(
        "--page-size-max", type=int, default=999, help="largest $top a list request may ask for"
    )
    graph.add_argument(
        "--permissions",
        default=None,
        help="comma-separated application permissions the app holds (default: "
        "User.Read.All,GroupMember.Read.All, and Application.Read.All with --learnster-app)",
    )
    graph.add_argument(
        "--guest-share",
        type=float,
        default=0.0,
        help="share of the users made B2B guests (e.g. 0.02)",
    )
    graph.add_argument(
        "--scope-attributes",
        action="store_true",
        help="give users employeeType, onPremisesExtensionAttributes and directory extensions",
    )
    graph.add_argument(
        "--learnster-app",
        metavar="APPID",
        default=None,
        help="create the service principal of this application with a few groups and users "
        "assigned (they are printed on stderr)",
    )

    _add_learnster(sub)
    return parser


def _add_learnster(sub: Any) -> None:
    learnster = sub.add_parser("learnster", help="fake Learnster SCIM 2.0 service provider")
    learnster.add_argument("--port", type=int, default=0)
    learnster.add_argument("--token", required=True, help="the Secret Token to accept")
    learnster.add_argument("--latency-ms", type=float, default=0.0)
    learnster.add_argument("--fault-rate", type=float, default=0.0)
    learnster.add_argument("--seed", type=int, default=0)
    learnster.add_argument(
        "--page-size-max", type=int, default=1000, help="largest page a list request returns"
    )
    learnster.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        metavar="N",
        help="requests per second (a token bucket); beyond it 429 with Retry-After",
    )
    learnster.add_argument(
        "--rate-burst",
        type=float,
        default=0.0,
        metavar="TOKENS",
        help="what the rate limit's bucket holds (default: a tenth of a second's requests)",
    )
    learnster.add_argument(
        "--capacity",
        type=int,
        default=0,
        metavar="C",
        help="requests served at a time at the base latency; more wait, so latency grows",
    )
    learnster.add_argument(
        "--no-log",
        action="store_true",
        help="keep no request log (saves memory in long benchmark runs)",
    )


def _install_stop_handlers() -> threading.Event:
    """Turn SIGTERM/SIGINT into an event; done before the URL is printed, so no signal is lost."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _serve_until_signalled(stop: threading.Event) -> None:
    # wait in short slices so the signal handler runs promptly on every platform
    while not stop.wait(0.2):
        pass


def _serve_graph(args: argparse.Namespace, stop: threading.Event) -> int:
    from syncd.fakes.generator import generate_organisation
    from syncd.fakes.graph import FakeGraph

    org = generate_organisation(
        args.users,
        seed=args.seed,
        groups=args.groups,
        memberships_per_user=args.memberships_per_user,
        domain=args.tenant_id,
        guest_share=args.guest_share,
        scope_attributes=args.scope_attributes,
    )
    certificate = None
    if args.client_certificate:
        with open(args.client_certificate, "rb") as pem:
            certificate = pem.read()
    permissions = args.permissions
    if permissions is None:
        permissions = "User.Read.All,GroupMember.Read.All"
        permissions += ",Application.Read.All" if args.learnster_app else ""
    fake = FakeGraph(
        org,
        tenant_id=args.tenant_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        client_certificate=certificate,
        access_token=args.token,
        tls=args.tls,
        port=args.port,
        permissions={p.strip() for p in permissions.split(",") if p.strip()},
        delta_page_size=args.delta_page_size,
        page_size_max=args.page_size_max,
        own_org=True,  # the generated dicts are not needed here: do not copy them
    )
    del org
    if args.learnster_app:
        sp_id = fake.add_learnster_app(args.learnster_app)
        print(f"servicePrincipal {sp_id} appId {args.learnster_app}", file=sys.stderr)
        for assignment in fake.app_role_assigned_to(sp_id):
            print(
                f"  assigned {assignment['principalType']} {assignment['principalId']} "
                f"{assignment['principalDisplayName']}",
                file=sys.stderr,
            )
        sys.stderr.flush()
    # The tenant lives as long as the fake: kept out of the collector's full collections,
    # which walked all of it (50-80 ms at 100,000 users) and held up whichever request
    # came then (a no-change cycle's delta answered in 1 ms or in 80; make bench).
    gc.collect()
    gc.freeze()
    fake.start()
    print(fake.base_url, flush=True)
    if fake.ca_file:
        print(f"ca_file={fake.ca_file}", flush=True)
    try:
        _serve_until_signalled(stop)
    finally:
        fake.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one fake until SIGTERM/SIGINT; returns the exit code."""
    args = _parser().parse_args(argv)
    stop = _install_stop_handlers()
    if args.service == "graph":
        return _serve_graph(args, stop)

    # imported lazily: the Learnster fake is optional for the Graph side
    from syncd.fakes.learnster import FakeLearnster

    learnster = FakeLearnster(
        token=args.token,
        port=args.port,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        seed=args.seed,
        page_size_max=args.page_size_max,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        capacity=args.capacity,
    )
    learnster.log_requests = not args.no_log
    learnster.start()
    print(learnster.base_url, flush=True)
    try:
        _serve_until_signalled(stop)
    finally:
        learnster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
