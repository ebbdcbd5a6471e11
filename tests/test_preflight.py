"""Preflight: a release that could not finish is refused before its first `up`, in seconds, with
every unmet precondition named and nothing changed (exit 3), instead of failing minutes later and
rolling back. Real peers only: a port where nothing listens, a host that cannot resolve, a real
Prometheus."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import httpx
import pytest

from core.errors import ExitCode, PreflightError
from release.cli import main
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.testing.fake_engine import FakeEngine
from tests.http_servers import refused_url
from tests.prometheus_server import Traffic, prometheus_with
from tests.release_doubles import FAST_HEALTH_CHECK, NEW_API, cluster, signed_project

NOWHERE = "https://api.nowhere.invalid/healthz/ready"
"""`.invalid` never resolves (RFC 2606)."""


def staging_with_prometheus_at(url: str) -> FakeEngine:
    engine = FakeEngine(project_dir=signed_project())
    edit = {"platform:healthCheck": FAST_HEALTH_CHECK, "platform:analysis": {"prometheusUrl": url}}
    engine.add_stack("staging", edit=edit)  # the file's own canary strategy
    return engine


def prometheus_down() -> str:
    return refused_url().removesuffix("/healthz")


def test_a_canary_whose_prometheus_does_not_answer_is_refused_before_any_change() -> None:
    engine = staging_with_prometheus_at(prometheus_down())
    ups = len(engine.ups)
    with cluster(engine) as api, pytest.raises(PreflightError) as refused:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    (problem,) = refused.value.problems
    assert problem.what == "prometheus" and "does not answer `vector(1)`" in problem.problem
    assert "--prometheus-url" in problem.fix
    assert refused.value.exit_code == ExitCode.ENGINE and len(engine.ups) == ups


def test_a_per_run_prometheus_url_replaces_the_stacks_for_that_run() -> None:
    traffic = [Traffic("api", "blue", 50), Traffic("api", "green", 50)]
    with prometheus_with(traffic) as loaded:
        engine = staging_with_prometheus_at(prometheus_down())
        with cluster(engine) as api:
            request = replace(api.request(NEW_API), prometheus_url=loaded.url)
            report = deploy(
                ReleaseContext.for_tests(engine, engine.project_dir, sleep=lambda _: None), request
            )
    assert report.phase == "Healthy", report.failure
    assert any(step.name.startswith("canary") for step in report.steps)


def test_a_per_run_prometheus_url_on_a_stack_without_analysis_is_named_as_unused() -> None:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("dev", edit={"platform:healthCheck": FAST_HEALTH_CHECK})  # dev: no analysis
    with cluster(engine, "dev") as api:
        request = replace(api.request(NEW_API), prometheus_url="http://127.0.0.1:9")
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir, sleep=lambda _: None), request)
    assert report.phase == "Healthy", report.failure
    assert "--prometheus-url was not used: stack 'dev' declares no metric analysis" in "\n".join(report.notes)


def test_a_health_url_whose_host_does_not_resolve_is_refused_before_any_change() -> None:
    engine = staging_with_prometheus_at(prometheus_down())
    ups = len(engine.ups)
    with cluster(engine) as api, pytest.raises(PreflightError) as refused:
        request = replace(api.request(NEW_API), preview_urls=[NOWHERE])
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), request)
    found = {problem.what: problem for problem in refused.value.problems}
    assert set(found) == {"prometheus", "health URL"}  # every unmet precondition at once
    assert "api.nowhere.invalid does not resolve" in found["health URL"].problem
    assert len(engine.ups) == ups


def test_the_refusal_under_json_lists_each_precondition_with_its_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("dev", edit={"platform:healthCheck": FAST_HEALTH_CHECK})
    argv = ["deploy", "dev", "--service", "api", "--image", NEW_API, "--preview-url", NOWHERE, "--json"]
    code = main([*argv, "--project-dir", str(engine.project_dir)], lambda _: engine, engine.clock)
    document = json.loads(capsys.readouterr().out)
    assert code == 3 and document["exitCode"] == 3
    problems = document["problems"]  # the given preview URL and the stack's own stable host (example.test)
    assert {problem["what"] for problem in problems} == {"health URL"} and all(p["fix"] for p in problems)
    assert any("api.nowhere.invalid does not resolve" in problem["problem"] for problem in problems)


def test_a_prometheus_url_that_is_not_an_http_url_is_refused_by_the_command_line() -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "deploy",
                "dev",
                "--service",
                "api",
                "--image",
                NEW_API,
                "--prometheus-url",
                "file:///etc/passwd",
            ]
        )
    assert exited.value.code == 2


def test_hosts_whose_lookups_never_answer_are_each_named_when_the_deadline_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from release.flows import preflight

    stuck = threading.Event()
    monkeypatch.setattr(preflight, "RESOLVE_SECONDS", 0.2)
    monkeypatch.setattr(preflight.socket, "getaddrinfo", lambda *_: stuck.wait(30))
    urls = [f"https://api{number}.nowhere.invalid/healthz" for number in range(6)]
    try:
        problems = preflight.unresolved_hosts(urls)
    finally:
        stuck.set()  # let the daemon lookups end
    assert [problem.problem for problem in problems] == [
        f"api{number}.nowhere.invalid does not resolve (no answer within 0.2 s)" for number in range(6)
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ("api.platform.example.test", "")),
        ({"HTTPS_PROXY": "http://proxy.corp.example.test:3128"}, ("proxy.corp.example.test", "HTTPS_PROXY")),
        ({"https_proxy": "proxy.corp.example.test:3128"}, ("proxy.corp.example.test", "HTTPS_PROXY")),
        ({"ALL_PROXY": "socks5://socks.example.test:1080"}, ("socks.example.test", "ALL_PROXY")),
        ({"HTTP_PROXY": "http://proxy.corp.example.test:3128"}, ("api.platform.example.test", "")),
        (
            {"HTTPS_PROXY": "http://proxy.corp.example.test:3128", "NO_PROXY": "localhost, .example.test"},
            ("api.platform.example.test", ""),
        ),
        (
            {"HTTPS_PROXY": "http://proxy.corp.example.test:3128", "no_proxy": "*"},
            ("api.platform.example.test", ""),
        ),
    ],
    ids=[
        "direct",
        "https-proxy",
        "lower-case-without-scheme",
        "all-proxy",
        "http-proxy-only",
        "no-proxy",
        "star",
    ],
)
def test_a_url_reached_through_a_proxy_needs_the_proxys_host_to_resolve_not_its_own(
    env: dict[str, str], expected: tuple[str, str]
) -> None:
    from release.flows.preflight import host_to_resolve

    assert host_to_resolve("https://api.platform.example.test/healthz", env) == expected


def test_behind_a_proxy_an_unresolvable_health_host_is_not_refused_but_an_unresolvable_proxy_is() -> None:
    from release.flows.preflight import unresolved_hosts

    behind = {"HTTPS_PROXY": "http://127.0.0.1:3128"}
    assert unresolved_hosts([NOWHERE], behind) == []
    problems = unresolved_hosts([NOWHERE], {"HTTPS_PROXY": "http://proxy.nowhere.invalid:3128"})
    assert [problem.problem.split(" (", 1)[0] for problem in problems] == ["the proxy proxy.nowhere.invalid"]
    assert "fix HTTPS_PROXY" in problems[0].fix


AS_HTTPX_CASES = {
    "both-cases-lower-wins": (
        {"HTTPS_PROXY": "http://a.proxy:3128", "https_proxy": "http://b.proxy:3128"},
        "https://api.example.test/",
    ),
    "empty-lower-cancels": (
        {"HTTPS_PROXY": "http://a.proxy:3128", "https_proxy": ""},
        "https://api.example.test/",
    ),
    "lower-no-proxy-wins": (
        {"HTTPS_PROXY": "http://a.proxy:3128", "NO_PROXY": "other.test", "no_proxy": "api.example.test"},
        "https://api.example.test/",
    ),
    "ipv6-no-proxy": ({"HTTP_PROXY": "http://a.proxy:3128", "NO_PROXY": "::1"}, "http://[::1]:8080/"),
    "dot-domain-is-subdomains-only": (
        {"HTTPS_PROXY": "http://a.proxy:3128", "NO_PROXY": ".example.test"},
        "https://example.test/",
    ),
    "dot-domain-covers-a-subdomain": (
        {"HTTPS_PROXY": "http://a.proxy:3128", "NO_PROXY": ".example.test"},
        "https://api.example.test/",
    ),
    "port-in-no-proxy": (
        {"HTTPS_PROXY": "http://a.proxy:3128", "NO_PROXY": "example.test:443"},
        "https://api.example.test/",
    ),
    "scheme-in-no-proxy": (
        {"HTTPS_PROXY": "http://a.proxy:3128", "NO_PROXY": "https://api.example.test"},
        "https://api.example.test/",
    ),
    "all-proxy": ({"ALL_PROXY": "http://c.proxy:1080"}, "https://api.example.test/"),
    "star": ({"HTTPS_PROXY": "http://a.proxy:3128", "no_proxy": "*"}, "https://api.example.test/"),
}


@pytest.mark.parametrize(("env", "url"), list(AS_HTTPX_CASES.values()), ids=list(AS_HTTPX_CASES))
def test_preflight_picks_the_proxy_the_health_checks_http_client_picks(
    env: dict[str, str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from release.flows.preflight import host_to_resolve

    for name in [name for name in os.environ if name.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = httpx.Client(trust_env=True)  # as the checks make theirs: proxies from the environment
    transport = client._transport_for_url(httpx.URL(url))
    chosen = transport._pool._proxy_url.host.decode() if transport is not client._transport else None  # type: ignore[attr-defined]
    host, variable = host_to_resolve(url, env)
    assert (host if variable else None) == chosen


def test_a_proxy_that_is_not_a_url_is_named_without_its_value() -> None:
    from release.flows.preflight import unresolved_hosts

    problems = unresolved_hosts([NOWHERE], {"HTTPS_PROXY": "http://user:s3cret@[bad:3128"})
    assert [problem.problem for problem in problems] == [
        "HTTPS_PROXY is not a proxy URL (the health checks go through it)"
    ]
    assert "s3cret" not in problems[0].fix
