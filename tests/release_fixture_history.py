"""A stack history built by running real releases through the engine double, for `release metrics`
and `release page` (tests and bench/page_bench.py share it).

On the FakeClock (every `up` takes 60 s: 30 s to start, 30 s to end), from Monday 2026-11-23 09:00 UTC:

    staging      entry 1  initial deploy (no record)
                 entries 2-4  release A of api (NEW_API): stage, switch, verify    -> Verified
                 entries 5-7  release B of api (NEWER_API): stage, switch, rollback -> RolledBack
                 entries 8-10 release C of api (FIXED_API): stage, switch, verify   -> Verified
                 entries 11-13 release D of api (CANARY_API), a canary judged by a real Prometheus
                              in which its color errs 2%: stage, canary 10%, rollback at the first
                              check (the canary abort)                            -> RolledBack
    production   entry 1  initial deploy
                 entry 2  a passing restore drill (RTO 12 min, RPO 3 min)
                 entries 3-5  release E: break-glass promotion of NEW_API              -> Verified
                 entries 6-8  release F: break-glass promotion of FIXED_API            -> Verified

Release E is followed by the break-glass release F, so E counts as failed; neither break-glass
release is reviewed. Each release's records and times are read back by the tests, never assumed.
Release D needs Prometheus (Debian's package): where it is missing the tests that read this history
skip, as the canary tests do (and fail under CI=true).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from core.config.sources import ConfigEntry
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.promote import PromoteRequest, promote
from release.gates import ApprovalReader
from release.github import EnvironmentApproval
from release.history.entries import RELEASES_KEY
from release.history.records import Event, ReleaseRecord, record_time
from release.testing.fake_clock import FakeClock
from release.testing.fake_engine import FakeEngine
from tests.prometheus_server import Traffic, prometheus_with
from tests.release_doubles import (
    FAST_BLUE_GREEN,
    NEW_API,
    NEWER_API,
    TEST_SIGNER,
    Cluster,
    chained_message,
    cluster,
    signed_project,
)

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FIXED_API = "registry.example.test/platform/api@sha256:" + "ef" * 32
CANARY_API = "registry.example.test/platform/api@sha256:" + "c4" * 32
CANARY = {"type": "canary", "steps": [10, 50], "pauseSeconds": 60}
"""Release D's strategy: each step held 60 s, judged every 30 s (the analysis defaults)."""
IN_GITHUB_ACTIONS = {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "alice"}


def _approved_by_bob(env: Any, environment: str) -> EnvironmentApproval:
    return EnvironmentApproval(
        environment,
        ("bob",),
        (),
        env["GITHUB_ACTOR"],
        "https://github.example.test/team/platform/actions/runs/77",
        "2026-11-23T12:00:00Z",
        commit_sha="c0ffee" * 6 + "c0ff",
        commit_author="alice",
        commit_author_name="Alice",
    )


APPROVED: ApprovalReader = _approved_by_bob


@dataclass
class FixtureHistory:
    engine: FakeEngine
    phases: dict[str, str] = field(default_factory=dict)
    """Each release's outcome by its letter (A-F), as the flow reported it."""


def record_passing_drill(engine: FakeEngine, stack: str) -> None:
    """A signed drill record with figures, shaped as `release drill` writes one."""
    record = ReleaseRecord(
        event=Event.DRILL,
        stack=stack,
        actor="drill-bot",
        time=record_time(engine.clock()),
        data={
            "drill": {
                "verdict": "Passed",
                "restoredFrom": "snapshot release-test",
                "figures": {
                    "rto": {"seconds": 720, "targetSeconds": 3600},
                    "rpo": {"seconds": 180, "targetSeconds": 900},
                },
            }
        },
    )
    engine.up(stack, {}, chained_message(engine, stack, record, f"release drill {stack}: Passed"))


def canary_abort(engine: FakeEngine, staging: Cluster) -> str:
    """Release D: a canary of CANARY_API onto the idle color, judged by a real Prometheus in which that
    color answers 2% of its requests with 5xx (the live one 0.1%; the limit is 1%). The first check of
    its 10% step fails it: the weight goes back to 0 with the rollback, whose record keeps the analysis.
    Staging runs blue-green again afterwards."""
    live = engine.get_config("staging")[RELEASES_KEY].value["api"]["activeColor"]
    idle = "green" if live == "blue" else "blue"
    traffic = [Traffic("api", idle, 50, error_share=0.02), Traffic("api", live, 50)]
    config = engine.stacks["staging"].config
    with prometheus_with(traffic, end=engine.clock() + timedelta(minutes=10)) as loaded:
        config["platform:analysis"] = ConfigEntry({"prometheusUrl": loaded.url})
        config["platform:strategy"] = ConfigEntry(CANARY)
        try:
            ctx = ReleaseContext.for_tests(engine, engine.project_dir)
            return deploy(ctx, staging.request(CANARY_API)).phase
        finally:
            del config["platform:analysis"], config["platform:strategy"]


def build_history() -> FixtureHistory:
    """Run the releases above on a fresh engine double (a few seconds: real health checks, and a
    real Prometheus for the canary)."""
    engine = FakeEngine(project_dir=signed_project(), clock=FakeClock(START))
    for name in ("staging", "production"):
        engine.add_stack(name, edit=dict(FAST_BLUE_GREEN))
    fixture = FixtureHistory(engine)
    with cluster(engine, "staging") as staging, cluster(engine, "production") as production:
        staging.bad_when_stable.add(NEWER_API)
        for letter, image in (("A", NEW_API), ("B", NEWER_API), ("C", FIXED_API)):
            ctx = ReleaseContext.for_tests(engine, engine.project_dir)
            fixture.phases[letter] = deploy(ctx, staging.request(image)).phase
            engine.clock.advance(3600)
        fixture.phases["D"] = canary_abort(engine, staging)
        engine.clock.advance(3600)
        record_passing_drill(engine, "production")
        for letter, image, reason in (
            ("E", NEW_API, "checkout is down since 11:40"),
            ("F", FIXED_API, "E broke refunds <script>alert(1)</script>"),
        ):
            engine.clock.advance(3600)
            ctx = ReleaseContext.for_tests(engine, engine.project_dir, env=IN_GITHUB_ACTIONS)
            request = PromoteRequest(
                "staging",
                "production",
                "api",
                "alice",
                digest=image.rsplit("@", 1)[1],
                break_glass_reason=reason,
                preview_urls=[production.preview_url],
                stable_urls=[production.stable_url],
                signer=TEST_SIGNER,
            )
            fixture.phases[letter] = promote(ctx, request, approval_reader=APPROVED).phase
    return fixture


@cache
def fixture_history() -> FixtureHistory:
    """One build per test session (callers must not add to it: copy what they change)."""
    return build_history()


def long_history(size: int, start: datetime = START) -> list[dict[str, Any]]:
    """`size` staging entries shaped like the CLI's JSON (newest first), every record signed and
    chained: releases of api of three entries each (stage, switch, verify; every tenth rolls back),
    a minute apart."""
    from datetime import timedelta

    from tests.history_data import GOOD, Chain, record, update

    chain = Chain()
    raw = []
    for index in range(size):
        number, step = divmod(index, 3)
        event = ("stage", "switch", "rollback" if number % 10 == 9 else "verify")[step]
        finished = (start + timedelta(minutes=index)).replace(tzinfo=None).isoformat()
        raw.append(update(finished, record(event, GOOD, release=f"r-{number:012x}"), chain=chain))
    return raw[::-1]
