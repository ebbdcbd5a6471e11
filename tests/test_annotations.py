"""Release annotations in Grafana, against a real HTTP server standing in for Grafana's annotations
API: one region per step with the dashboard's tags, the token only in its header; a Grafana that
fails, hangs or is gone never fails a release nor holds it up for more than one bounded wait."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from release.annotations import Annotator
from release.cli import main
from release.context import ReleaseContext
from release.flows.abort import AbortRequest, abort
from release.flows.deploy import deploy
from release.flows.rollback import RollbackRequest, rollback
from release.report.release_report import ReleaseReport
from release.testing.fake_engine import FakeEngine
from tests.http_servers import Answer, Request, json_answer, refused_url, serve_app
from tests.release_doubles import NEW_API, RELEASE_STEPS, TEST_SIGNER, cluster, fake_engine
from tests.test_lifecycle import killed_during_verify

TOKEN = "test-only-grafana-token-value-4c1d"


@contextmanager
def grafana(answer: Answer = (200, {}, b'{"id": 1}')) -> Iterator[tuple[str, list[Request]]]:
    received: list[Request] = []
    with serve_app(lambda _: answer, received) as url:
        yield url, received


def released(engine: FakeEngine, annotator: Annotator, broken: set[str] | None = None) -> ReleaseReport:
    with cluster(engine) as api:
        if broken:
            api.broken[NEW_API] = broken
        context = ReleaseContext.for_tests(engine, engine.project_dir, annotator=annotator)
        return deploy(context, api.request(NEW_API))


def test_a_release_posts_one_region_per_step_with_the_dashboards_tags() -> None:
    engine = fake_engine()
    started = engine.clock()
    with grafana() as (url, received):
        report = released(engine, Annotator(url, TOKEN))
    assert report.phase == "Healthy"
    assert f"Grafana annotations: {len(RELEASE_STEPS)} of {len(RELEASE_STEPS)} posted" in report.notes
    assert {(request.method, request.path) for request in received} == {("POST", "/api/annotations")}
    assert {request.header("Authorization") for request in received} == {f"Bearer {TOKEN}"}
    posted = [json.loads(request.body) for request in received]
    assert [next(tag for tag in post["tags"] if tag.startswith("step:")) for post in posted] == [
        f"step:{name}" for name in RELEASE_STEPS
    ]
    for post in posted:
        assert post["tags"][:4] == ["release", "service:api", "namespace:platform-staging", "stack:staging"]
        assert (
            started.timestamp() * 1000 <= post["time"] <= post["timeEnd"] <= engine.clock().timestamp() * 1000
        )
    switch = posted[RELEASE_STEPS.index("switch")]
    assert switch["text"] == "deploy api sha256:abababababab…: switch ok (2 resource(s) changed)"
    # the switch's region spans its update on the engine double's clock (30 s to start, 30 s to end)
    assert (switch["timeEnd"] - switch["time"]) == 60_000
    assert datetime.fromtimestamp(switch["time"] / 1000, UTC) >= started


def test_a_failed_release_annotates_the_failing_step_and_the_rollback() -> None:
    engine = fake_engine()
    with grafana() as (url, received):
        report = released(engine, Annotator(url, TOKEN), broken={"/v1/search"})
    assert report.phase == "RolledBack"
    texts = [json.loads(request.body)["text"] for request in received]
    assert any(": smoke preview FAILED (3/4 smoke checks passed; search:" in text for text in texts)
    assert any(": rollback ok" in text for text in texts)


@pytest.mark.parametrize(
    ("answer", "error"),
    [((500, {}, b"oops"), "Grafana answered 500"), ((401, {}, b""), "Grafana answered 401")],
)
def test_a_grafana_that_refuses_never_fails_the_release_and_the_report_says_why(
    answer: Answer, error: str
) -> None:
    engine = fake_engine()
    with grafana(answer) as (url, _):
        report = released(engine, Annotator(url, TOKEN))
    assert report.phase == "Healthy"
    assert f"Grafana annotations: 0 of {len(RELEASE_STEPS)} posted (not posted: {error})" in report.notes


def test_a_grafana_that_is_gone_or_hangs_costs_the_release_one_bounded_wait_at_most() -> None:
    def hanging(_: Request) -> Answer:
        time.sleep(3)
        return json_answer(200, {})

    outside = {}  # each release's time outside its steps: the engine double's updates vary more
    for case, url in (("gone", refused_url()), ("hangs", None), ("none", "")):
        engine = fake_engine()
        started = time.monotonic()
        if case == "hangs":
            with serve_app(hanging) as hung:
                report = released(engine, Annotator(hung, TOKEN, timeout_seconds=0.5))
                outside[case] = time.monotonic() - started - report.seconds
        else:
            report = released(engine, Annotator(url or None, TOKEN, timeout_seconds=0.5))
            outside[case] = time.monotonic() - started - report.seconds
        assert report.phase == "Healthy"
        if case == "gone":
            assert (
                "not posted: Grafana unreachable (ConnectError); skipped after: Grafana unreachable"
                in (report.notes[-1])
            )
        if case == "hangs":
            assert "Grafana timed out after 0.5s" in report.notes[-1]
    # posts go out in the background and the rest are skipped once Grafana does not answer: the
    # release waits at most one timeout (0.5 s) for them, at its end
    assert outside["gone"] < outside["none"] + 0.5
    assert outside["hangs"] < outside["none"] + 0.5 + 0.5


def test_the_environment_turns_annotations_on_and_the_token_is_never_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = fake_engine("dev")
    with grafana((500, {}, TOKEN.encode())) as (url, received), cluster(engine, "dev") as api:
        monkeypatch.setenv("GRAFANA_URL", url)
        monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
        argv = ["deploy", "dev", "--service", "api", "--image", NEW_API, "--preview-url", api.preview_url]
        argv += ["--stable-url", api.stable_url, "--project-dir", str(engine.project_dir), "--json"]
        code = main(argv, lambda _: engine, engine.clock)
    captured = capsys.readouterr()
    assert code == 0 and received
    assert TOKEN not in captured.out + captured.err
    assert "Grafana annotations: 0 of" in captured.out
    assert repr(Annotator(url, TOKEN)) == "Annotator(enabled=True)"


def test_a_manual_rollback_is_annotated_on_the_dashboards_of_the_services_it_moves() -> None:
    engine = fake_engine()
    with cluster(engine) as api, grafana() as (url, received):
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
        context = ReleaseContext.for_tests(engine, engine.project_dir, annotator=Annotator(url, TOKEN))
        report = rollback(
            context, RollbackRequest("staging", "bob", signer=TEST_SIGNER, stable_urls=[api.stable_url])
        )
    assert report.phase == "Healthy"
    posted = [json.loads(request.body) for request in received]
    steps = [next(tag for tag in post["tags"] if tag.startswith("step:")) for post in posted]
    assert steps == ["step:rollback", "step:recheck api"]
    assert posted[0]["tags"][:4] == ["release", "service:api", "namespace:platform-staging", "stack:staging"]
    assert (
        posted[0]["text"].startswith("rollback entry ")
        and ": rollback ok (targeted: 2 resource(s) changed)" in (posted[0]["text"])
    )
    assert "Grafana annotations: 2 of 2 posted" in report.notes


def test_an_abort_is_annotated_too() -> None:
    engine = fake_engine()
    with cluster(engine) as api, grafana() as (url, received):
        killed_during_verify(engine, api, NEW_API)
        request = AbortRequest("staging", "api", "bob", reason="runner lost", stable_urls=[api.stable_url])
        request.signer = TEST_SIGNER
        context = ReleaseContext.for_tests(engine, engine.project_dir, annotator=Annotator(url, TOKEN))
        report = abort(context, request)
    assert report.phase == "Healthy"
    posted = [json.loads(request.body) for request in received]
    assert posted[0]["text"].startswith("abort api sha256:abababababab…: abort ok")
    assert "step:abort" in posted[0]["tags"] and "service:api" in posted[0]["tags"]
