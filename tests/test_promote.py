"""`release promote` end to end against the engine double: verified digests move, the rest is refused.

Refused requests change nothing: those decided offline make no engine call at all; those decided
on the source's history only read it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.config.sources import read_stack_file
from core.errors import ApprovalEvidenceError, ConfigError, PromotionRefusedError, UsageError
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.promote import PromoteRequest, promote, reject, review
from release.gates import ApprovalReader
from release.github import EnvironmentApproval
from release.notify import Notifier
from release.report.release_report import ReleaseReport
from release.testing.fake_clock import FakeClock
from release.testing.fake_engine import FakeEngine
from tests.http_servers import healthy, serve
from tests.release_doubles import (
    FAST_BLUE_GREEN,
    NEW_API,
    NEWER_API,
    TEST_SIGNER,
    Cluster,
    cluster,
    history_of,
    record_drill,
    signed_project,
)

MONDAY_MORNING = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@contextmanager
def two_stacks(
    registry: str = "", start: datetime | None = None
) -> Iterator[tuple[FakeEngine, Cluster, Cluster]]:
    """staging and production on the engine double, its clock at `start` (default: a Monday
    morning); `registry` replaces the images' registry host."""
    engine = FakeEngine(project_dir=signed_project(), clock=FakeClock(start) if start else None)
    for name in ("staging", "production"):
        edit: dict[str, Any] = dict(FAST_BLUE_GREEN)
        if registry:
            edit["platform:releases"] = _with_registry(name, registry, engine)
        engine.add_stack(name, edit=edit)
    record_drill(engine, "production")  # its policy asks for a passing restore drill within 30 days
    with ExitStack() as stack:
        staging = stack.enter_context(cluster(engine, "staging"))
        production = stack.enter_context(cluster(engine, "production"))
        yield engine, staging, production


def _with_registry(stack: str, registry: str, engine: FakeEngine) -> dict[str, Any]:
    releases = copy.deepcopy(read_stack_file(engine.project_dir, stack).raw.values["platform:releases"])
    for release in releases.values():
        release["images"] = {
            color: image.replace("registry.example.test/", f"{registry}/")
            for color, image in release["images"].items()
        }
    return dict(releases)


def verified_in_staging(engine: FakeEngine, staging: Cluster, image: str = NEW_API) -> datetime:
    assert (
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), staging.request(image)).phase
        == "Healthy"
    )
    engine.calls.clear()
    verify = history_of(engine, "staging")[0].record
    assert verify is not None and verify.signed_at is not None
    return verify.signed_at


RUN_URL = "https://github.example.test/team/platform/actions/runs/77"
IN_GITHUB_ACTIONS = {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "alice"}


def approved_by(*logins: str, commit_author: str = "alice") -> ApprovalReader:
    """GitHub's answer, as release.github reads it: `logins` approved the production environment of
    a run of `commit_author`'s commit ('' when GitHub links the commit to no account).
    (tests/test_github.py runs the real reader against a real server.)"""

    def read(env: Mapping[str, str], environment: str) -> EnvironmentApproval:
        return EnvironmentApproval(
            environment,
            logins,
            (),
            env["GITHUB_ACTOR"],
            RUN_URL,
            "2026-11-23T12:00:00Z",
            commit_sha="c0ffee" * 6 + "c0ff",
            commit_author=commit_author,
            commit_author_name="Dana Example" if not commit_author else commit_author.title(),
        )

    return read


def not_approved(env: Mapping[str, str], environment: str) -> EnvironmentApproval:
    raise ApprovalEvidenceError(environment, "pending", "the environment is waiting for review", "approve it")


def promote_in_ci(
    engine: FakeEngine,
    promotion: PromoteRequest,
    reader: ApprovalReader | None = None,
    notifier: Notifier | None = None,
    now: datetime | None = None,
) -> ReleaseReport:
    """`release promote` as the release workflow runs it: in GitHub Actions, approved by bob; at `now`
    on the test's clock when given, else at the engine double's clock as it stands."""
    if now is not None:
        engine.clock.set(now)
    return promote(
        ReleaseContext.for_tests(engine, engine.project_dir, env=IN_GITHUB_ACTIONS, notifier=notifier),
        promotion,
        approval_reader=reader or approved_by("bob"),
    )


def request(production: Cluster, **options: Any) -> PromoteRequest:
    values: dict[str, Any] = {
        "source": "staging",
        "target": "production",
        "service": "api",
        "actor": "alice",
        "preview_urls": [production.preview_url],
        "signer": TEST_SIGNER,
        "stable_urls": [production.stable_url],
        **options,
    }
    return PromoteRequest(**values)


def test_a_digest_from_a_registry_with_a_port_is_promoted_with_its_whole_repository() -> None:
    """Issue 13's bug: `--digest` completed from `registry:5000/platform/api` became `registry@sha256:...`."""
    image = "registry:5000/platform/api@sha256:" + "ab" * 32
    with two_stacks(registry="registry:5000") as (engine, staging, production):
        verified = verified_in_staging(engine, staging, image)
        report = promote_in_ci(
            engine,
            request(production, digest="sha256:" + "ab" * 32),
            now=verified + timedelta(minutes=31),
        )
        assert report.phase == "Healthy", report.render()
        assert engine.serving("production", "api") == image
    stage = history_of(engine, "production")[2].record
    assert stage is not None and stage.event == "stage" and stage.image == image


def test_a_verified_soaked_digest_is_promoted_byte_identical_with_its_approval_recorded() -> None:
    with two_stacks() as (engine, staging, production):
        verified = verified_in_staging(engine, staging)
        report = promote_in_ci(engine, request(production), now=verified + timedelta(minutes=31))
        assert report.phase == "Healthy" and report.command == "promote"
        assert engine.serving("production", "api") == NEW_API
    records = [entry.record for entry in history_of(engine, "production")[:3]]
    assert [record.event for record in records if record] == ["verify", "switch", "stage"]
    assert all(record and record.image == NEW_API for record in records)
    assert all(record and record.promoted_from == "staging" for record in records)
    assert records[0] and records[0].approval == {
        "source": "github-environment",
        "ref": RUN_URL,
        "approvers": ["bob"],
        "environment": "production",
        "runActor": "alice",
        "readAt": "2026-11-23T12:00:00Z",
        "commitAuthor": "alice",
    }


def refused(
    engine: FakeEngine,
    production: Cluster,
    now: datetime = MONDAY_MORNING,
    reader: ApprovalReader | None = None,
    **options: Any,
) -> str:
    with pytest.raises((PromotionRefusedError, ConfigError, UsageError)) as raised:
        promote_in_ci(engine, request(production, **options), reader, now=now)
    assert not [call for call in engine.calls if call[0] == "up"]
    return str(raised.value)


def test_an_unverified_digest_is_refused_before_any_change() -> None:
    with two_stacks() as (engine, staging, production):
        staging.bad.add(NEW_API)
        deploy(
            ReleaseContext.for_tests(engine, engine.project_dir), staging.request(NEW_API)
        )  # fails, rolled back: never verified
        engine.calls.clear()
        message = refused(engine, production, digest="sha256:" + "ab" * 32)
    assert "[verified]" in message and "no verify record" in message


def test_a_digest_never_deployed_in_the_source_is_refused() -> None:
    with two_stacks() as (engine, _, production):
        message = refused(engine, production, digest="sha256:" + "ef" * 32)
    assert "never deployed in staging" in message


def test_a_rejected_digest_is_refused() -> None:
    with two_stacks() as (engine, staging, production):
        verified = verified_in_staging(engine, staging)
        reject(
            ReleaseContext.for_tests(engine, engine.project_dir, env={}),
            "staging",
            "api",
            "sha256:" + "ab" * 32,
            "corrupts carts on retry",
            "carol",
            signer=TEST_SIGNER,
        )
        engine.calls.clear()
        message = refused(engine, production, now=verified + timedelta(hours=1))
    assert "[rejected]" in message and "corrupts carts on retry" in message


def test_a_digest_younger_than_the_soak_time_is_refused_with_the_time_left() -> None:
    with two_stacks() as (engine, staging, production):
        verified = verified_in_staging(engine, staging)
        message = refused(engine, production, now=verified + timedelta(minutes=10))
    assert "[soak]" in message and "wait 20 min more" in message


def test_offline_refusals_make_no_engine_call_at_all() -> None:
    with two_stacks() as (engine, _, production):
        cases: dict[str, dict[str, Any]] = {
            "four-eyes": {"reader": approved_by("alice")},
            "stage": {"source": "dev"},
            "approval": {"reader": not_approved},
            "reason": {"break_glass_reason": "urgent"},
        }
        for rule, options in cases.items():
            assert f"[{rule}]" in refused(engine, production, **options)
        friday_evening = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
        assert "[freeze]" in refused(engine, production, now=friday_evening)
        assert "never a tag" in refused(engine, production, digest="latest")
        assert "unknown service" in refused(engine, production, service="search")
        assert engine.calls == []


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("instant", "frozen"),
    [
        (datetime(2026, 3, 27, 15, 59, tzinfo=BERLIN), False),
        (datetime(2026, 3, 27, 16, 0, tzinfo=BERLIN), True),
        (datetime(2026, 3, 30, 7, 59, tzinfo=BERLIN), True),  # summer time began on the Sunday
        (datetime(2026, 3, 30, 8, 0, tzinfo=BERLIN), False),
        (datetime(2026, 10, 23, 15, 59, tzinfo=BERLIN), False),
        (datetime(2026, 10, 23, 16, 0, tzinfo=BERLIN), True),
        (datetime(2026, 10, 26, 7, 59, tzinfo=BERLIN), True),  # summer time ended on the Sunday
        (datetime(2026, 10, 26, 8, 0, tzinfo=BERLIN), False),
    ],
    ids=lambda value: value.strftime("%a %Y-%m-%d %H:%M %Z") if isinstance(value, datetime) else str(value),
)
def test_production_is_frozen_from_friday_16_00_to_monday_08_00_berlin_time_across_daylight_saving(
    instant: datetime, frozen: bool
) -> None:
    """Production's committed freeze window (Pulumi.yaml), judged by the promotion at `instant` on
    the test's clock, a digest verified in staging two hours before."""
    with two_stacks(start=instant - timedelta(hours=2)) as (engine, staging, production):
        verified_in_staging(engine, staging)
        if frozen:
            assert "[freeze]" in refused(engine, production, now=instant)
        else:
            assert promote_in_ci(engine, request(production), now=instant).phase == "Healthy"


def test_the_author_of_the_runs_commit_approving_it_is_not_four_eyes() -> None:
    with two_stacks() as (engine, _, production):
        message = refused(engine, production, reader=approved_by("erin", commit_author="erin"))
        assert "[four-eyes]" in message and "the commit's author erin" in message
        unlinked = refused(engine, production, reader=approved_by("bob", commit_author=""))
        assert "[four-eyes]" in unlinked and "to no account" in unlinked
        assert engine.calls == []


def test_every_broken_rule_is_reported_at_once() -> None:
    with two_stacks() as (engine, _, production):
        message = refused(engine, production, source="dev", reader=not_approved)
    assert "[stage]" in message and "[approval]" in message


def test_break_glass_skips_the_gates_names_them_and_notifies() -> None:
    posted: list[Any] = []
    with two_stacks() as (engine, _, production), serve(healthy(), posted) as webhook:
        staging_image = engine.serving("staging", "api")  # verified? no: only deployed initially
        report = promote_in_ci(
            engine,
            request(production, break_glass_reason="checkout is down since 11:40"),
            now=datetime(2026, 11, 27, 17, 0, tzinfo=UTC),  # inside the weekend freeze
            notifier=Notifier(webhook),
        )
    assert report.phase == "Healthy"
    stage = history_of(engine, "production")[2].record
    assert stage is not None and stage.event == "stage" and stage.image == staging_image
    assert stage.break_glass == {"reason": "checkout is down since 11:40", "skipped": ["freeze", "verified"]}
    assert stage.notification == {"event": "break-glass release", "sent": True}
    assert any(note.startswith("BREAK-GLASS") for note in report.notes)
    assert "break-glass" in posted[0]["text"] and "sha256:" in posted[0]["text"]


def test_a_direct_review_by_the_releaser_is_refused_and_by_someone_else_recorded() -> None:
    with two_stacks() as (engine, _, production):
        promote_in_ci(
            engine, request(production, break_glass_reason="checkout is down since 11:40"), now=MONDAY_MORNING
        )
        stage_number = history_of(engine, "production")[2].number
        with pytest.raises(UsageError, match="someone else reviews it"):
            review(
                ReleaseContext.for_tests(engine, engine.project_dir, env={}),
                "production",
                stage_number,
                "looked fine",
                "alice",
                signer=TEST_SIGNER,
            )
        recorded = review(
            ReleaseContext.for_tests(engine, engine.project_dir, env=REVIEW_RUN),
            "production",
            stage_number,
            "fix was right; INC-7 closed",
            "bob",
            signer=TEST_SIGNER,
        )
    assert recorded.reviews == stage_number
    assert recorded.approval == {"source": "github-run"} and recorded.run.endswith("/actions/runs/77")


REVIEW_RUN = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_ACTOR": "bob",
    "GITHUB_REPOSITORY": "acme/platform",
    "GITHUB_RUN_ID": "77",
}
"""The review workflow's job, started by bob."""


def test_an_asserted_review_is_refused_where_it_would_not_close_the_break_glass() -> None:
    with two_stacks() as (engine, _, production):
        promote_in_ci(
            engine, request(production, break_glass_reason="checkout is down since 11:40"), now=MONDAY_MORNING
        )
        stage_number = history_of(engine, "production")[2].number
        engine.calls.clear()
        with pytest.raises(UsageError, match="allowAssertedReview is false"):
            review(
                ReleaseContext.for_tests(engine, engine.project_dir, env={}),  # a laptop: a typed name
                "production",
                stage_number,
                "looked fine to me",
                "mallory",
                signer=TEST_SIGNER,
            )
        assert [call for call in engine.calls if call[0] == "up"] == []


def test_a_newer_verified_digest_replaces_the_old_one_as_what_is_promoted_by_default() -> None:
    with two_stacks() as (engine, staging, production):
        verified_in_staging(engine, staging, NEW_API)
        verified = verified_in_staging(engine, staging, NEWER_API)
        promote_in_ci(engine, request(production), now=verified + timedelta(minutes=31))
        assert engine.serving("production", "api") == NEWER_API


def test_a_typed_approval_is_refused_where_the_gate_allows_only_proven_ones() -> None:
    with two_stacks() as (engine, _, production), pytest.raises(PromotionRefusedError) as raised:
        promote(
            ReleaseContext.for_tests(engine, engine.project_dir, env={}),
            request(production, approval_ref="CHG-1", approver="bob"),
        )
    assert "[approval]" in str(raised.value) and "asserted, not proven" in str(raised.value)
    assert engine.calls == []


def test_setting_github_variables_by_hand_proves_nothing_without_githubs_answer() -> None:
    with two_stacks() as (engine, _, production):
        env = {"GITHUB_ACTIONS": "true", "RELEASE_GITHUB_ENVIRONMENT": "production", "GITHUB_ACTOR": "alice"}
        with pytest.raises(PromotionRefusedError) as raised:
            promote(ReleaseContext.for_tests(engine, engine.project_dir, env=env), request(production))
    assert "[approval]" in str(raised.value) and "GITHUB_TOKEN" in str(raised.value)


def test_a_promotion_without_a_signing_key_is_refused_before_any_engine_call() -> None:
    with (
        two_stacks() as (engine, _, production),
        pytest.raises(UsageError, match="RELEASE_SIGNING_KEY is not set"),
    ):
        promote_in_ci(engine, request(production, signer=None))
    assert engine.calls == []


def test_config_reaches_production_only_after_it_ran_in_staging() -> None:
    with two_stacks() as (engine, staging, production):
        staging_release = replace(staging.request(NEW_API), flags={"FEATURE_SEARCH_V2": "true"})
        assert (
            deploy(ReleaseContext.for_tests(engine, engine.project_dir), staging_release).phase == "Healthy"
        )
        verify = history_of(engine, "staging")[0].record
        assert verify is not None and verify.signed_at is not None
        report = promote_in_ci(
            engine,
            request(production, flags={"FEATURE_SEARCH_V2": "true"}),
            now=verify.signed_at + timedelta(minutes=31),
        )
        assert report.phase == "Healthy", report.render()
        assert engine.serving_config("production", "api")["FEATURE_SEARCH_V2"] == "true"


def test_config_that_does_not_run_in_the_source_is_refused() -> None:
    with two_stacks() as (engine, staging, production):
        verified = verified_in_staging(engine, staging)
        with pytest.raises(PromotionRefusedError) as refusal:
            promote_in_ci(
                engine,
                request(production, flags={"FEATURE_SEARCH_V2": "true"}),
                now=verified + timedelta(minutes=31),
            )
    assert [violation.rule for violation in refusal.value.violations] == ["config-live-in-source"]
    assert "runs flag FEATURE_SEARCH_V2=false, not true" in str(refusal.value)
    assert not [call for call in engine.calls if call[0] == "up"]


def test_break_glass_releases_a_kill_switch_not_yet_in_the_source_and_records_the_skip() -> None:
    with two_stacks() as (engine, staging, production):
        verified = verified_in_staging(engine, staging)
        report = promote_in_ci(
            engine,
            request(
                production,
                flags={"FEATURE_SEARCH_V2": "true"},
                break_glass_reason="search outage: the old search is down, switching to v2 now",
            ),
            now=verified + timedelta(minutes=31),
        )
        assert report.phase == "Healthy", report.render()
    stage = history_of(engine, "production")[2].record
    assert stage is not None and "config-live-in-source" in stage.break_glass["skipped"]


def _promotion_into_production_with(drill: Callable[[FakeEngine], None], **options: Any) -> Any:
    """A verified staging digest promoted to production, whose history holds what `drill` wrote
    instead of the passing drill two_stacks records (the stack policy: requireDrillWithinDays 30)."""
    with two_stacks() as (engine, staging, production):
        engine.stacks["production"].history.pop(0)  # the drill two_stacks recorded
        drill(engine)
        verified = verified_in_staging(engine, staging)
        return promote_in_ci(engine, request(production, **options), now=verified + timedelta(minutes=31))


def test_a_promotion_into_production_without_a_restore_drill_is_refused_naming_the_rule() -> None:
    with pytest.raises(PromotionRefusedError, match=r"\[recent-drill\] production has no restore drill"):
        _promotion_into_production_with(lambda _: None)


def test_a_failed_newest_drill_refuses_the_promotion() -> None:
    with pytest.raises(PromotionRefusedError, match="newest restore drill Failed"):
        _promotion_into_production_with(lambda engine: record_drill(engine, "production", "Failed"))


def test_a_drill_older_than_the_policy_allows_refuses_the_promotion() -> None:
    stale = datetime(2026, 10, 1, tzinfo=UTC)  # two months before the promotion
    with pytest.raises(
        PromotionRefusedError, match=r"is \d\d days old; the policy asks for one within 30 days"
    ):
        _promotion_into_production_with(lambda engine: record_drill(engine, "production", at=stale))


def test_break_glass_skips_the_drill_gate_and_names_it_in_the_record() -> None:
    report = _promotion_into_production_with(
        lambda _: None, break_glass_reason="checkout is down since 11:40"
    )
    assert report.phase == "Healthy"
    assert "recent-drill" in " ".join(report.notes)


def test_a_drill_dated_in_the_future_refuses_the_promotion() -> None:
    ahead = datetime(2036, 11, 23, tzinfo=UTC)  # a signer's clock ten years ahead
    with pytest.raises(PromotionRefusedError, match="in the future: a signer's clock is wrong"):
        _promotion_into_production_with(lambda engine: record_drill(engine, "production", at=ahead))
