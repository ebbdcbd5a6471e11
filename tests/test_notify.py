"""Notifications against a real webhook server on 127.0.0.1: they never fail or block a release."""

from __future__ import annotations

from typing import Any

from release.deploy import deploy
from release.history import parse_history
from release.notify import Notifier, message
from tests.conftest import ROOT
from tests.http_servers import failing, healthy, serve, slow
from tests.release_doubles import NEW_API, cluster, fake_engine


def test_a_notification_posts_slack_compatible_text_with_digest_actor_and_run() -> None:
    posted: list[Any] = []
    with serve(healthy(), posted) as webhook:
        text = message("promotion", "production", "api", NEW_API, "alice", "https://ci.example.test/runs/9")
        result = Notifier(webhook).send("promotion", text)
    assert result.sent
    assert posted == [{"text": text}]
    assert "sha256:" + "ab" * 32 in text and "alice" in text and "https://ci.example.test/runs/9" in text


def test_a_webhook_answering_500_is_reported_not_raised() -> None:
    with serve(failing(500)) as webhook:
        result = Notifier(webhook).send("promotion", "text")
    assert not result.sent and result.error == "webhook answered 500"


def test_a_slow_webhook_times_out_within_its_budget() -> None:
    with serve(slow(1.0)) as webhook:
        result = Notifier(webhook, timeout_seconds=0.2).send("promotion", "text")
    assert not result.sent and "timed out" in result.error
    assert result.seconds < 0.9


def test_the_webhook_url_never_appears_in_an_error() -> None:
    with serve(failing(503)) as webhook:
        result = Notifier(webhook + "/services/T000/B000/test-only-token").send("promotion", "text")
    assert "test-only-token" not in result.error and "127.0.0.1" not in result.error


def test_a_failed_release_rolls_back_even_when_the_webhook_is_down() -> None:
    engine = fake_engine()
    with cluster(engine) as api, serve(slow(1.0)) as webhook:
        api.bad.add(NEW_API)
        report = deploy(engine, api.request(NEW_API), ROOT, notifier=Notifier(webhook, timeout_seconds=0.3))
    assert report.phase == "RolledBack"
    assert [result.to_json() for result in report.notifications] == [
        {"event": "failed release", "sent": False, "error": "webhook timed out after 0.3s"},
        {"event": "automatic rollback", "sent": False, "error": "webhook timed out after 0.3s"},
    ]
    rollback = parse_history(engine.history("staging"))[0].record
    assert rollback is not None and rollback.notification["event"] == "failed release"


def test_a_failed_release_and_its_automatic_rollback_are_both_announced() -> None:
    engine = fake_engine()
    posted: list[Any] = []
    with cluster(engine) as api, serve(healthy(), posted) as webhook:
        api.bad.add(NEW_API)
        deploy(engine, api.request(NEW_API), ROOT, notifier=Notifier(webhook))
    texts = sorted(post["text"] for post in posted)
    assert texts[0].startswith("*automatic rollback* api on staging") and "RolledBack" in texts[0]
    assert texts[1].startswith("*release failed, rolling back* api on staging") and "analyse" in texts[1]
