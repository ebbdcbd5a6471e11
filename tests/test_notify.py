"""Notifications against a real webhook server on 127.0.0.1: they never fail or block a release."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.notify import NotificationResult, Notifier, message
from tests.http_servers import failing, healthy, refused_url, serve, serve_raw, slow, trickle
from tests.release_doubles import NEW_API, cluster, fake_engine, history_of


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
        report = deploy(
            ReleaseContext.for_tests(
                engine, engine.project_dir, notifier=Notifier(webhook, timeout_seconds=0.3)
            ),
            api.request(NEW_API),
        )
    assert report.phase == "RolledBack"
    assert [result.to_json() for result in report.notifications] == [
        {"event": "failed release", "sent": False, "error": "webhook timed out after 0.3s"},
        {"event": "automatic rollback", "sent": False, "error": "webhook timed out after 0.3s"},
    ]
    rollback = history_of(engine, "staging")[0].record
    assert rollback is not None and rollback.notification["event"] == "failed release"


def test_a_failed_release_and_its_automatic_rollback_are_both_announced() -> None:
    engine = fake_engine()
    posted: list[Any] = []
    with cluster(engine) as api, serve(healthy(), posted) as webhook:
        api.bad.add(NEW_API)
        deploy(
            ReleaseContext.for_tests(engine, engine.project_dir, notifier=Notifier(webhook)),
            api.request(NEW_API),
        )
    texts = sorted(post["text"] for post in posted)
    assert texts[0].startswith("*automatic rollback* api on staging") and "RolledBack" in texts[0]
    assert texts[1].startswith("*release failed, rolling back* api on staging") and "analyse" in texts[1]


SECRET_PATH = "/services/T000/B000/test-only-webhook-token-5e1d"


def assert_secret_absent(result: NotificationResult) -> None:
    assert "test-only-webhook-token-5e1d" not in json.dumps(result.to_json()) + result.error


def test_a_webhook_trickling_its_answer_is_abandoned_when_its_timeout_ends() -> None:
    with serve_raw(trickle(every_seconds=0.05, for_seconds=8)) as webhook:
        started = time.monotonic()
        result = Notifier(webhook + SECRET_PATH, timeout_seconds=0.5).send("failed release", "text")
        elapsed = time.monotonic() - started
    assert not result.sent and result.error == "webhook timed out after 0.5s"
    assert elapsed < 0.5 + 0.5
    assert_secret_absent(result)


def test_by_default_the_whole_webhook_exchange_is_bounded_by_2_seconds() -> None:
    with serve_raw(trickle(every_seconds=0.05, for_seconds=8)) as webhook:
        started = time.monotonic()
        result = Notifier(webhook + SECRET_PATH).send("failed release", "text")
        elapsed = time.monotonic() - started
    assert result.error == "webhook timed out after 2s"
    assert elapsed < 2.0 + 0.5


def test_a_background_notification_to_a_trickling_webhook_is_decided_within_its_timeout() -> None:
    with serve_raw(trickle(every_seconds=0.05, for_seconds=8)) as webhook:
        notifier = Notifier(webhook + SECRET_PATH, timeout_seconds=0.3)
        result = notifier.start("failed release", "text").result(notifier.timeout_seconds + 1)
    assert result is not None and result.error == "webhook timed out after 0.3s"


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.test" + SECRET_PATH + "\n",
        "http://hooks.example.test:port" + SECRET_PATH,
        "http://[::1" + SECRET_PATH,
        "hooks.example.test" + SECRET_PATH,
    ],
)
def test_a_malformed_webhook_url_is_reported_invalid_without_the_url(url: str) -> None:
    result = Notifier(url).send("promotion", "text")
    assert not result.sent and result.error == "webhook URL is invalid"
    assert_secret_absent(result)


def test_an_unreachable_webhook_is_reported_by_kind_without_the_url() -> None:
    result = Notifier(refused_url() + SECRET_PATH).send("promotion", "text")
    assert not result.sent and result.error == "webhook unreachable (ConnectError)"
    assert_secret_absent(result)


def test_a_notification_sent_from_inside_a_running_event_loop_is_still_sent() -> None:
    posted: list[Any] = []

    async def send_from_a_coroutine(webhook: str) -> NotificationResult:
        return Notifier(webhook).send("promotion", "text")

    loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the loop Pulumi's runtime uses
    try:
        with serve(healthy(), posted) as webhook:
            result = loop.run_until_complete(send_from_a_coroutine(webhook))
    finally:
        loop.close()
    assert result.sent and posted == [{"text": "text"}]
