"""Reading an environment approval from GitHub's REST API, against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.errors import ApprovalEvidenceError, ExitCode, ReleaseError
from release.github import MAX_BODY_BYTES, EnvironmentApproval, read_environment_approval
from release.testing.fake_clock import FakeClock
from tests.github_api import (
    Oversized,
    ReceivedRequest,
    Reply,
    Trickle,
    approvals,
    commit_by,
    echo_token,
    error,
    malformed,
    not_http,
    redirect,
    review,
    serve_api,
)
from tests.http_servers import refused_url

TOKEN = "ghs_testOnlyTokenNotReal0123456789abcdef"  # a test-only value, so its absence can be asserted
APPROVED = approvals(review("approved", "bob", comment="LGTM, ship it"))
HEAD_SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


def github_env(api_url: str, **changes: str | None) -> dict[str, str]:
    """What GitHub Actions sets for run 4242 of acme/platform, started by alice."""
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": api_url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/platform",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_ACTOR": "alice",
        "GITHUB_SHA": HEAD_SHA,
        "GITHUB_TOKEN": TOKEN,
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


READ_AT = datetime(2026, 11, 23, 12, 30, tzinfo=ZoneInfo("Europe/Berlin"))


def read(
    reply: Reply, environment: str = "production", commit: Reply | None = None, **changes: str | None
) -> EnvironmentApproval:
    with serve_api(reply, commit=commit) as url:
        return read_environment_approval(
            github_env(url, **changes), environment, timeout_seconds=3, clock=FakeClock(READ_AT)
        )


def refusal(
    reply: Reply, environment: str = "production", commit: Reply | None = None, **changes: str | None
) -> ApprovalEvidenceError:
    with pytest.raises(ApprovalEvidenceError) as raised:
        read(reply, environment, commit, **changes)
    return raised.value


def refusal_before_any_request(**changes: str | None) -> ApprovalEvidenceError:
    received: list[ReceivedRequest] = []
    with serve_api(APPROVED, received) as url, pytest.raises(ApprovalEvidenceError) as raised:
        read_environment_approval(github_env(url, **changes), "production", timeout_seconds=3)
    assert received == []
    return raised.value


# --- an approval ---------------------------------------------------------------------------------


def test_an_approved_production_environment_names_its_approvers_and_the_run() -> None:
    approval = read(APPROVED)
    assert approval.environment == "production"
    assert approval.approvers == ("bob",)
    assert approval.comments == ("LGTM, ship it",)
    assert approval.actor == "alice"
    assert approval.run_url == "https://github.com/acme/platform/actions/runs/4242"


def test_the_runs_approvals_are_asked_for_with_the_token_as_a_bearer_header() -> None:
    received: list[ReceivedRequest] = []
    with serve_api(APPROVED, received) as url:
        read_environment_approval(github_env(url), "production", timeout_seconds=3)
    assert received == [
        ReceivedRequest(
            path=path,
            authorization=f"Bearer {TOKEN}",
            accept="application/vnd.github+json",
            api_version="2022-11-28",
        )
        for path in (
            "/repos/acme/platform/actions/runs/4242/approvals",
            f"/repos/acme/platform/commits/{HEAD_SHA}",
        )
    ]


def test_a_github_enterprise_api_url_keeps_its_path() -> None:
    received: list[ReceivedRequest] = []
    with serve_api(APPROVED, received) as url:
        read_environment_approval(github_env(url + "/api/v3/"), "production", timeout_seconds=3)
    assert [request.path for request in received] == [
        "/api/v3/repos/acme/platform/actions/runs/4242/approvals",
        f"/api/v3/repos/acme/platform/commits/{HEAD_SHA}",
    ]


def test_the_evidence_serialises_with_camel_case_keys_and_its_source() -> None:
    document = read(APPROVED).to_json()
    assert document == {
        "source": "github-environment",
        "environment": "production",
        "approvers": ["bob"],
        "comments": ["LGTM, ship it"],
        "actor": "alice",
        "triggeringActor": "alice",
        "commit": HEAD_SHA,
        "commitAuthor": "alice",
        "commitAuthorName": "Alice Example",
        "runUrl": "https://github.com/acme/platform/actions/runs/4242",
        "readAt": document["readAt"],
    }
    json.dumps(document)


def test_who_re_ran_the_run_is_read_beside_who_started_it() -> None:
    approval = read(APPROVED, GITHUB_TRIGGERING_ACTOR="bob")
    assert (approval.actor, approval.triggering_actor) == ("alice", "bob")


def test_the_commits_author_is_the_github_account_github_links_to_it() -> None:
    approval = read(APPROVED, commit=commit_by("erin", "Erin Example"))
    assert (approval.commit_sha, approval.commit_author, approval.commit_author_name) == (
        HEAD_SHA,
        "erin",
        "Erin Example",
    )


def test_a_commit_github_links_to_no_account_has_no_author_login_but_its_git_name() -> None:
    approval = read(APPROVED, commit=commit_by(None, "Erin Example"))
    assert (approval.commit_author, approval.commit_author_name) == ("", "Erin Example")


def test_an_answer_for_another_commit_is_refused_as_malformed() -> None:
    refused = refusal(APPROVED, commit=lambda answer: answer.json(200, {"sha": "0" * 40, "author": None}))
    assert refused.kind == "malformed" and HEAD_SHA in refused.problem


def test_a_commit_the_token_cannot_read_says_which_permission_is_missing() -> None:
    refused = refusal(APPROVED, commit=error(403, "Resource not accessible by integration"))
    assert refused.kind == "forbidden"
    assert f"commit {HEAD_SHA}" in refused.problem and "contents: read" in refused.fix


@pytest.mark.parametrize("sha", ["HEAD", "3f78685", "3F786850E387550FDAB836ED7E6DC881DE23001B", "../../etc"])
def test_a_commit_sha_that_is_not_a_full_sha_is_refused_before_any_request(sha: str) -> None:
    refused = refusal_before_any_request(GITHUB_SHA=sha)
    assert refused.kind == "invalid-env" and "GITHUB_SHA" in refused.problem


def test_a_re_run_is_refused_because_the_reviews_do_not_name_their_attempt() -> None:
    refused = refusal_before_any_request(GITHUB_RUN_ATTEMPT="2")
    assert refused.kind == "re-run"
    assert "attempt 2" in refused.problem and "start a new run" in refused.fix


def test_a_malformed_attempt_number_is_refused() -> None:
    assert refusal_before_any_request(GITHUB_RUN_ATTEMPT="1; rm -rf /").kind == "invalid-env"


def test_read_at_is_the_utc_time_the_tool_read_the_approvals() -> None:
    approval = read(APPROVED)
    assert approval.read_at == "2026-11-23T11:30:00Z"  # READ_AT, 12:30 in Berlin, as UTC


def test_only_approvals_of_the_asked_environment_count() -> None:
    approval = read(
        approvals(
            review("approved", "carol", environment="staging"),
            review("approved", "bob"),
            review("approved", "dave"),
            review("approved", "bob"),
        )
    )
    assert approval.approvers == ("bob", "dave")


def test_environment_names_match_regardless_of_case() -> None:
    assert read(APPROVED, environment="Production").approvers == ("bob",)


def test_an_environment_nobody_reviewed_is_refused_naming_the_environments_that_were() -> None:
    refused = refusal(approvals(review("approved", "bob", environment="staging")))
    assert refused.kind == "not-reviewed"
    assert "no review of environment 'production'" in str(refused)
    assert "reviewed: staging" in str(refused)
    assert "environment: production" in refused.fix


def test_a_run_without_any_review_is_refused() -> None:
    refused = refusal(approvals())
    assert refused.kind == "not-reviewed"
    assert "no environment was reviewed" in str(refused)


def test_a_rejected_environment_is_refused_naming_who_rejected() -> None:
    refused = refusal(approvals(review("rejected", "carol", comment="not during the sale")))
    assert refused.kind == "rejected"
    assert 'carol rejected it: "not during the sale"' in str(refused)
    assert "https://github.com/acme/platform/actions/runs/4242" in str(refused)


def test_a_rejection_outweighs_an_approval_of_the_same_environment() -> None:
    refused = refusal(approvals(review("approved", "bob"), review("rejected", "carol")))
    assert refused.kind == "rejected"
    assert "carol rejected it: (no comment)" in str(refused)


def test_a_pending_environment_is_refused_as_not_yet_approved() -> None:
    refused = refusal(approvals(review("pending", "bob")))
    assert refused.kind == "pending"
    assert "still pending review" in str(refused)


def test_the_error_is_a_release_error_exiting_as_a_config_error() -> None:
    refused = refusal(approvals(review("pending", "bob")))
    assert isinstance(refused, ReleaseError)
    assert refused.exit_code == ExitCode.BAD_INPUT
    assert refused.environment == "production"


# --- the environment GitHub sets -----------------------------------------------------------------


def test_every_missing_variable_is_named() -> None:
    refused = refusal_before_any_request(GITHUB_RUN_ID=None, GITHUB_TOKEN=None, GITHUB_ACTOR="  ")
    assert refused.kind == "missing-env"
    assert "GITHUB_RUN_ID, GITHUB_ACTOR, GITHUB_TOKEN are not set" in refused.problem
    assert "GITHUB_REPOSITORY" not in refused.problem
    assert "actions: read" in refused.fix


@pytest.mark.parametrize("run_id", ["42a", "42/../../users", "-1", "4 2", "\u0664\u0662", ""])
def test_a_run_id_that_is_not_digits_is_refused_before_any_request(run_id: str) -> None:
    refused = refusal_before_any_request(GITHUB_RUN_ID=run_id)
    assert refused.kind == ("missing-env" if not run_id else "invalid-env")
    assert "GITHUB_RUN_ID" in refused.problem


@pytest.mark.parametrize(
    "repository",
    [
        "acme",
        "acme/platform/extra",
        "../platform",
        "acme/..",
        "acme/.",
        "-acme/platform",
        "acme/plat form",
        "acme/platform?per_page=1",
        "acme%2Fplatform",
        "acme/platform#x",
        "ac\u00e9me/platform",
        "/platform",
        "acme/",
    ],
)
def test_a_repository_that_is_not_owner_slash_repo_is_refused_before_any_request(repository: str) -> None:
    refused = refusal_before_any_request(GITHUB_REPOSITORY=repository)
    assert refused.kind == "invalid-env"
    assert "GITHUB_REPOSITORY" in refused.problem


@pytest.mark.parametrize(
    "api_url",
    [
        "http://api.github.example",
        "ftp://127.0.0.1/api",
        "https://user:secret@api.github.com",
        "https://api.github.com/?page=2",
        "not a url",
    ],
)
def test_an_api_url_the_token_must_not_be_sent_to_is_refused(api_url: str) -> None:
    refused = refusal_before_any_request(GITHUB_API_URL=api_url)
    assert refused.kind == "invalid-env"
    assert "GITHUB_API_URL" in refused.problem


def test_a_token_that_could_not_be_a_header_is_refused_without_being_shown() -> None:
    refused = refusal_before_any_request(GITHUB_TOKEN="ghs_split token\nX-Injected: 1")
    assert refused.kind == "invalid-env"
    assert "split" not in str(refused) and "Injected" not in str(refused)


def test_an_empty_environment_name_is_refused() -> None:
    assert refusal(APPROVED, environment=" ").kind == "invalid-env"


# --- what the API answers ------------------------------------------------------------------------


def test_a_401_says_the_token_was_refused() -> None:
    refused = refusal(error(401, "Bad credentials"))
    assert refused.kind == "unauthorized"
    assert "GitHub refused the token (401: Bad credentials)" in refused.problem
    assert "github.token" in refused.fix


def test_a_403_says_the_token_lacks_actions_read() -> None:
    refused = refusal(error(403, "Resource not accessible by integration"))
    assert refused.kind == "forbidden"
    assert "Resource not accessible by integration" in refused.problem
    assert "permissions: actions: read" in refused.fix


def test_a_403_at_the_rate_limit_says_when_to_retry() -> None:
    refused = refusal(
        error(
            403,
            "API rate limit exceeded for installation.",
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1900000000"},
        )
    )
    assert refused.kind == "rate-limited"
    assert refused.fix == "retry after 17:46:40 UTC"


def test_a_404_says_the_run_was_not_found_or_is_not_visible() -> None:
    refused = refusal(error(404, "Not Found"))
    assert refused.kind == "not-found"
    assert "run 4242 of acme/platform" in refused.problem


def test_a_path_the_api_does_not_serve_is_a_404() -> None:
    with serve_api(APPROVED) as url, pytest.raises(ApprovalEvidenceError) as raised:
        read_environment_approval(github_env(url + "/elsewhere"), "production", timeout_seconds=3)
    assert raised.value.kind == "not-found"


@pytest.mark.parametrize(
    "reply", [error(500, "Server Error"), error(502, ""), redirect("https://evil.test/")]
)
def test_another_status_is_refused_with_the_status_and_redirects_are_not_followed(reply: Reply) -> None:
    refused = refusal(reply)
    assert refused.kind == "status"
    assert "GitHub's API answered" in refused.problem


def test_a_body_that_is_not_json_is_refused() -> None:
    refused = refusal(malformed(b"<html>Service Unavailable</html>"))
    assert refused.kind == "malformed"
    assert "not JSON" in refused.problem


def test_json_nested_too_deeply_is_refused_as_malformed() -> None:
    assert refusal(malformed(b"[" * 200_000)).kind == "malformed"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"total_count": 0}, "a JSON dict, not a list"),
        ([1], "entry 0: not an object"),
        ([{**review("approved", "bob"), "state": "maybe"}], "entry 0: 'state' is \"maybe\""),
        ([{**review("approved", "bob"), "user": None}], "entry 0: 'user.login' is missing"),
        ([review("approved", "bob"), {**review("approved", "bob"), "environments": "production"}], "entry 1"),
        ([{**review("approved", "bob"), "environments": [{"id": 1}]}], "an environment has no 'name'"),
        ([{**review("approved", "bob"), "comment": 7}], "'comment' is 7, not text"),
    ],
)
def test_a_body_that_is_not_a_list_of_review_entries_is_refused(document: object, problem: str) -> None:
    refused = refusal(malformed(json.dumps(document).encode()))
    assert refused.kind == "malformed"
    assert problem in refused.problem


def test_an_oversized_body_is_refused_at_the_cap_without_being_read_to_its_end() -> None:
    body = Oversized(32 * MAX_BODY_BYTES)
    refused = refusal(body)
    assert refused.kind == "too-large"
    assert "over 1024 KiB" in refused.problem
    assert body.bytes_sent < body.total_bytes


def test_an_oversized_declared_length_is_refused_before_the_body_is_read() -> None:
    refused = refusal(Oversized(MAX_BODY_BYTES + 1, declare_length=True))
    assert refused.kind == "too-large"


def test_a_body_exactly_at_the_cap_is_read() -> None:
    entries: list[dict[str, Any]] = []
    size = 2  # the brackets
    while True:
        entry = review("approved", f"reviewer{len(entries)}")
        grown = size + len(json.dumps(entry)) + (2 if entries else 0)
        if grown > MAX_BODY_BYTES:
            break
        entries.append(entry)
        size = grown
    payload = json.dumps(entries).encode()
    payload = payload[:-1] + b" " * (MAX_BODY_BYTES - len(payload)) + b"]"
    assert len(payload) == MAX_BODY_BYTES
    assert len(read(malformed(payload)).approvers) == len(entries)


def test_a_slow_api_is_refused_within_its_deadline() -> None:
    trickle = Trickle(interval=0.05, max_seconds=10)
    with serve_api(trickle) as url:
        started = time.monotonic()
        with pytest.raises(ApprovalEvidenceError) as raised:
            read_environment_approval(github_env(url), "production", timeout_seconds=0.5)
        elapsed = time.monotonic() - started
    assert raised.value.kind == "timeout"
    assert "within 0.5s" in raised.value.problem
    assert trickle.bytes_sent >= 3  # it kept talking: no per-read timeout would have tripped
    assert 0.45 <= elapsed < 1.2


def test_an_unreachable_api_is_refused_as_a_transport_failure() -> None:
    base = refused_url().removesuffix("/healthz")
    with pytest.raises(ApprovalEvidenceError) as raised:
        read_environment_approval(github_env(base), "production", timeout_seconds=3)
    assert raised.value.kind == "transport"
    assert "failed: ConnectError" in raised.value.problem


def test_a_server_that_does_not_speak_http_is_refused_as_a_transport_failure() -> None:
    refused = refusal(not_http())
    assert refused.kind == "transport"
    assert refused.__cause__ is None and refused.__context__ is None


# --- the token -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 500])
def test_the_token_never_appears_in_an_error(status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    refused = refusal(echo_token(status))
    assert "not accepted: Bearer ***" in refused.problem  # the server did quote it
    assert "HTTP Request: GET" in caplog.text  # httpx's own log was captured, and is checked too
    for text in (str(refused), repr(refused), refused.problem, refused.fix, refused.environment, caplog.text):
        assert TOKEN not in text
    assert refused.__cause__ is None and refused.__context__ is None


def test_the_token_never_appears_in_the_evidence(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    approval = read(approvals(review("approved", "bob", comment=f"approved with {TOKEN}")))
    assert approval.comments == ("approved with ***",)
    for text in (repr(approval), json.dumps(approval.to_json()), caplog.text):
        assert TOKEN not in text


def test_the_token_never_appears_when_the_api_is_too_slow_or_unreachable() -> None:
    errors = []
    for base in (refused_url().removesuffix("/healthz"), "https://user:" + TOKEN + "@api.github.com"):
        with pytest.raises(ApprovalEvidenceError) as raised:
            read_environment_approval(github_env(base), "production", timeout_seconds=0.3)
        errors.append(raised.value)
    with serve_api(Trickle()) as url, pytest.raises(ApprovalEvidenceError) as raised:
        read_environment_approval(github_env(url), "production", timeout_seconds=0.3)
    errors.append(raised.value)
    assert [refused.kind for refused in errors] == ["transport", "invalid-env", "timeout"]
    assert all(TOKEN not in str(refused) for refused in errors)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_a_deadline_that_is_not_a_positive_number_of_seconds_is_a_programming_error(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout_seconds"):
        read_environment_approval(github_env("https://api.github.com"), "production", timeout)
