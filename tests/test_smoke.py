"""Smoke suites against real HTTP servers on 127.0.0.1: what passes, what fails and how it says so,
secrets that never show, the concurrency bound and both deadlines, and every hostile server (a
trickle, a huge body, a redirect loop, JSON nested too deep) a failed check, never a hang."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.config.rules import load_stack_config
from core.config.smoke import SmokeCheck, SmokeSettings
from core.config.sources import read_stack_file
from core.errors import ConfigError
from release.smoke import SmokeResult, Suite, run_suite_sync
from tests.conftest import SECRET_NAMES, edit_yaml
from tests.http_servers import (
    Answer,
    Request,
    deep_json,
    huge_body,
    json_answer,
    redirect_loop,
    refused_url,
    serve_app,
    serve_raw,
    trickle,
)

TOKEN = "test-only-smoke-token-value-0a9f"
PREVIEW = "test-only-preview-header-value-77e1"


def settings(checks: list[dict[str, Any]], **knobs: Any) -> SmokeSettings:
    return SmokeSettings.model_validate(
        {"checkTimeoutSeconds": 1, "suiteTimeoutSeconds": 5, **knobs, "suites": {"api": checks}}
    )


FOUR = [
    {"name": "ready", "request": {"path": "/healthz/ready"}, "expect": {"json": {"/status": "ok"}}},
    {
        "name": "account",
        "request": {"path": "/v1/account", "headers": {"Authorization": "Bearer ${secret:SMOKE_TOKEN}"}},
        "expect": {"json": {"/account/plan": "smoke"}, "jsonTypes": {"/account/id": "string"}},
    },
    {"name": "account-needs-a-token", "request": {"path": "/v1/account"}, "expect": {"status": 401}},
    {
        "name": "search",
        "request": {"method": "POST", "path": "/v1/search", "json": {"query": "smoke"}},
        "expect": {"jsonTypes": {"/results": "array"}, "bodyContains": ["results"]},
    },
]


def app(broken: set[str] | None = None, echo: bool = False) -> Any:
    """The service as its suite expects it; paths in `broken` answer 500 (echoing the request's
    headers in the body when `echo`, as a careless error page might)."""

    def answer(request: Request) -> Answer:
        path = request.path
        if path in (broken or set()):
            body = {"error": "boom", "headers": request.headers if echo else {}}
            return json_answer(500, body)
        if path == "/healthz/ready":
            return json_answer(200, {"status": "ok"})
        if path == "/v1/account":
            if request.header("Authorization") != f"Bearer {TOKEN}":
                return json_answer(401, {"error": "unauthenticated"})
            return json_answer(200, {"account": {"id": "acct-1", "plan": "smoke"}})
        if path == "/v1/search" and request.method == "POST":
            query = json.loads(request.body)["query"]
            return json_answer(200, {"query": query, "results": []})
        return json_answer(404, {})

    return answer


def run(origin: str, suite: SmokeSettings, headers: dict[str, str] | None = None) -> SmokeResult:
    declared = Suite("api", tuple(suite.suite("api")), suite, {"SMOKE_TOKEN": TOKEN})
    return run_suite_sync(declared, "preview", origin, headers)


def test_a_suite_of_four_passes_with_the_count_and_each_request_as_declared() -> None:
    received: list[Request] = []
    with serve_app(app(), received) as origin:
        result = run(origin, settings(FOUR), headers={"X-Preview-Token": PREVIEW})
    assert result.passed and result.summary() == "4/4 smoke checks passed"
    assert result.counts() == {"passed": 4, "total": 4, "failed": []}
    assert {request.header("X-Preview-Token") for request in received} == {PREVIEW}
    search = next(request for request in received if request.path == "/v1/search")
    assert search.method == "POST" and json.loads(search.body) == {"query": "smoke"}
    assert search.header("Content-Type") == "application/json"


def test_one_check_of_four_failing_says_which_what_it_expected_and_what_came_back() -> None:
    with serve_app(app(broken={"/v1/account"}, echo=True)) as origin:
        result = run(origin, settings(FOUR[:2] + FOUR[3:] + [FOUR[0] | {"name": "ready-again"}]))
    assert not result.passed and result.headline() == "3/4 smoke checks passed"
    (account,) = result.failed
    assert account.name == "account" and account.status == 500
    assert "status: expected 200, got 500" in account.failures
    assert '/account/plan: expected "smoke", missing' in account.failures
    assert "/account/id: expected a string, missing" in account.failures
    assert result.summary().startswith("3/4 smoke checks passed; account: status: expected 200, got 500")
    assert result.counts() == {"passed": 3, "total": 4, "failed": ["account"]}


def test_a_secret_the_server_echoes_back_is_never_shown_nor_a_body_beyond_its_excerpt() -> None:
    with serve_app(app(broken={"/v1/account"}, echo=True)) as origin:
        result = run(origin, settings(FOUR[:2]), headers={"X-Preview-Token": PREVIEW})
    (account,) = result.failed
    shown = json.dumps(result.to_json()) + result.summary()
    assert TOKEN not in shown and PREVIEW not in shown
    assert len(account.excerpt) <= 130 and account.excerpt.startswith("'")


def test_values_are_compared_as_json_and_types_as_json_schema_names_them() -> None:
    body = {"flag": True, "count": 1, "ratio": 1.0, "name": "1", "nested": {"list": [1, "x"]}}
    checks = [
        {"name": "equal", "request": {"path": "/"}, "expect": {"json": {"/flag": True, "/count": 1.0}}},
        {"name": "true-is-not-one", "request": {"path": "/"}, "expect": {"json": {"/count": True}}},
        {"name": "text-is-not-a-number", "request": {"path": "/"}, "expect": {"json": {"/name": 1}}},
        {
            "name": "types",
            "request": {"path": "/"},
            "expect": {"jsonTypes": {"/ratio": "integer", "/count": "number", "/nested/list/1": "string"}},
        },
        {"name": "wrong-type", "request": {"path": "/"}, "expect": {"jsonTypes": {"/flag": "integer"}}},
    ]
    with serve_app(lambda _: json_answer(200, body)) as origin:
        result = run(origin, settings(checks))
    outcomes = {check.name: check for check in result.checks}
    assert outcomes["equal"].passed and outcomes["types"].passed
    assert outcomes["true-is-not-one"].failures == ("/count: expected true, got 1",)
    assert outcomes["text-is-not-a-number"].failures == ('/name: expected 1, got "1"',)
    assert outcomes["wrong-type"].failures == ("/flag: expected an integer, got a boolean true",)


def test_a_slow_answer_fails_its_latency_bound_with_the_time_it_took() -> None:
    def slow(_: Request) -> Answer:
        time.sleep(0.3)
        return json_answer(200, {})

    checks = [{"name": "slow", "request": {"path": "/"}, "expect": {"maxLatencyMs": 100}}]
    with serve_app(slow) as origin:
        (outcome,) = run(origin, settings(checks)).checks
    assert not outcome.passed and outcome.failures[0].startswith("latency: expected at most 100 ms, took 3")


@contextmanager
def counting(delay: float) -> Iterator[tuple[str, dict[str, int]]]:
    """A server that takes `delay` per request and counts the most requests it held at once."""
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def answer(_: Request) -> Answer:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(delay)
        with lock:
            state["now"] -= 1
        return json_answer(200, {})

    with serve_app(answer) as origin:
        yield origin, state


def checks_named(count: int) -> list[dict[str, Any]]:
    return [{"name": f"check-{number}", "request": {"path": f"/{number}"}} for number in range(count)]


def test_checks_run_concurrently_up_to_the_bound_and_no_further() -> None:
    with counting(0.3) as (origin, state):
        started = time.monotonic()
        result = run(origin, settings(checks_named(6), concurrency=2))
        took = time.monotonic() - started
    assert result.passed and state["most"] == 2
    assert 0.9 <= took < 1.5  # three rounds of two


def test_a_suite_of_four_takes_its_slowest_check_not_the_sum() -> None:
    with counting(0.3) as (origin, _):
        started = time.monotonic()
        result = run(origin, settings(checks_named(4)))
        took = time.monotonic() - started
    assert result.passed and took < 0.3 + 0.25


def test_the_suite_deadline_fails_the_checks_it_cut_off_and_returns_on_time() -> None:
    with counting(0.4) as (origin, _):
        started = time.monotonic()
        result = run(origin, settings(checks_named(4), concurrency=1, suiteTimeoutSeconds=1))
        took = time.monotonic() - started
    assert took < 1.4
    assert result.headline() in ("2/4 smoke checks passed", "3/4 smoke checks passed")
    assert all("deadline: the suite's 1 s passed" in check.failures[0] for check in result.failed)


HOSTILE = {
    "trickle": (trickle(every_seconds=0.05, for_seconds=10), "timeout: no complete answer within 1s"),
    "huge body": (huge_body(), "body: larger than 1 MiB"),
    "deep JSON": (deep_json(), "body: JSON nests deeper than 64 levels (not parsed)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_server_is_a_failed_check_within_the_deadline(case: str) -> None:
    behaviour, failure = HOSTILE[case]
    checks = [{"name": "hostile", "request": {"path": "/"}, "expect": {"jsonTypes": {"/status": "string"}}}]
    with serve_raw(behaviour) as origin:
        started = time.monotonic()
        (outcome,) = run(origin, settings(checks)).checks
        took = time.monotonic() - started
    assert not outcome.passed and outcome.failures[0] == failure
    assert took < 1.5


def test_a_redirect_loop_is_a_failed_check_whether_followed_or_not() -> None:
    checks = [
        {"name": "followed", "request": {"path": "/loop", "followRedirects": True}},
        {"name": "not-followed", "request": {"path": "/loop"}},
    ]
    with serve_raw(redirect_loop()) as origin:
        followed, not_followed = run(origin, settings(checks)).checks
    assert followed.failures == ("redirect: more than 10 redirects (a redirect loop?)",)
    assert not_followed.failures == ("status: expected 200, got 302",)


def test_a_redirect_to_another_host_is_not_followed_so_no_secret_goes_there() -> None:
    elsewhere: list[Request] = []
    with serve_app(lambda _: json_answer(200, {}), elsewhere) as other:

        def away(_: Request) -> Answer:
            return 302, {"Location": f"{other}/steal"}, b""

        checks = [
            {
                "name": "away",
                "request": {
                    "path": "/",
                    "followRedirects": True,
                    "headers": {"Authorization": "Bearer ${secret:SMOKE_TOKEN}"},
                },
            }
        ]
        with serve_app(away) as origin:
            (outcome,) = run(origin, settings(checks), headers={"X-Preview-Token": PREVIEW}).checks
    assert outcome.failures[0].startswith("redirect: 302 to another host")
    assert elsewhere == []


def test_a_same_host_redirect_is_followed_when_asked() -> None:
    def moved(request: Request) -> Answer:
        if request.path == "/old":
            return 301, {"Location": "/new"}, b""
        return json_answer(200, {"status": "ok"})

    checks = [{"name": "moved", "request": {"path": "/old", "followRedirects": True}}]
    with serve_app(moved) as origin:
        assert run(origin, settings(checks)).passed


def test_a_closed_port_is_a_failed_check_saying_so() -> None:
    origin = refused_url().removesuffix("/healthz")
    (outcome,) = run(origin, settings(checks_named(1))).checks
    assert outcome.failures[0].startswith("connection:")


def test_a_secret_without_a_value_fails_its_check_naming_only_the_secret() -> None:
    with serve_app(app()) as origin:
        suite = settings(FOUR[1:2])
        (outcome,) = run_suite_sync(Suite("api", tuple(suite.suite("api")), suite), "stable", origin).checks
    assert outcome.failures == ("secret: SMOKE_TOKEN has no value in this stack",)


def test_the_suite_declaration_refuses_what_would_leak_or_never_run() -> None:
    def problems(check: dict[str, Any], **knobs: Any) -> str:
        with pytest.raises(ValueError) as raised:
            settings([check], **knobs)
        return str(raised.value)

    assert "set by the release tool" in problems(
        {"name": "x", "request": {"path": "/", "headers": {"X-Preview-Token": "guess"}}}
    )
    assert "${secret:NAME}" in problems(
        {"name": "x", "request": {"path": "/", "headers": {"Authorization": "${SECRET_TOKEN}"}}}
    )
    assert "send secrets in a header" in problems({"name": "x", "request": {"path": "/${secret:A}"}})
    assert "absolute path" in problems({"name": "x", "request": {"path": "https://evil.example/"}})
    assert "JSON pointers" in problems({"name": "x", "request": {"path": "/"}, "expect": {"json": {"a": 1}}})
    assert "has no body" in problems({"name": "x", "request": {"path": "/", "json": {"a": 1}}})
    assert "beyond checkTimeoutSeconds" in problems(
        {"name": "x", "request": {"path": "/"}, "expect": {"maxLatencyMs": 5000}}
    )
    assert SmokeCheck.model_validate({"name": "x", "request": {"path": "/"}}).expect.status == 200


def test_a_suite_for_an_undeclared_service_and_an_unset_smoke_secret_are_reported_together(
    project: Path,
) -> None:
    def declare(document: dict[str, Any]) -> None:
        document["config"]["smoke"]["value"]["suites"]["billing"] = [{"name": "up", "request": {"path": "/"}}]

    edit_yaml(project / "Pulumi.yaml", declare)
    secrets = [name for name in SECRET_NAMES if name != "SMOKE_ACCOUNT_TOKEN"]
    with pytest.raises(ConfigError) as raised:
        load_stack_config(read_stack_file(project, "staging", secrets).raw)
    problems = {problem.key: problem for problem in raised.value.problems}
    assert problems["platform:smoke.suites.billing"].value == "billing"
    missing = problems["platform:appSecrets"]
    assert "SMOKE_ACCOUNT_TOKEN" in missing.problem
    assert "pulumi config set --secret --path 'appSecrets.SMOKE_ACCOUNT_TOKEN'" in missing.fix
