"""`release page` and `release metrics` on a hostile history: free text with HTML and control
characters is escaped, never markup; records that do not count are shown as such and never counted;
5,000 entries render with the timeline and history cut to their limits."""

from __future__ import annotations

import copy
import html
import re
from datetime import timedelta
from typing import Any

from core.config.sources import project_settings
from release.history.entries import HistoryEntry, parse_history, record_rules
from release.history.records import Event, ReleaseRecord
from release.report.metrics import METRICS
from release.report.page import HISTORY_ENTRIES, TIMELINE_RELEASES, Page, build_page, render_site
from tests.history_data import STAGING_RULES, Chain, record, update
from tests.release_doubles import history_of
from tests.release_fixture_history import fixture_history, long_history

HOSTILE = '<img src=x onerror="alert(1)">\x1b[31m\nfake row\r\u202e'


def _page(histories: dict[str, list[HistoryEntry]]) -> Page:
    engine = fixture_history().engine
    live = {stack: engine.stacks[stack].config["platform:releases"].value for stack in histories}
    return build_page(
        project_settings(engine.project_dir), list(histories), histories, live, {}, engine.clock()
    )


def _hostile_staging() -> list[HistoryEntry]:
    """Staging's history with a foreign update, an unsigned record with HTML in its actor and reason,
    and an exact copy (replay) of the newest counted record, on top."""
    engine = fixture_history().engine
    raw = copy.deepcopy(engine.stacks["staging"].history)
    forged = ReleaseRecord(
        event=Event.STAGE,
        stack="staging",
        actor=HOSTILE,
        service="api",
        image="registry.example.test/platform/api@sha256:" + "66" * 32,
        release="r-" + "0" * 12,
        reason=HOSTILE,
        break_glass={"reason": HOSTILE, "skipped": []},
    )
    on_top: list[dict[str, Any]] = [
        {**raw[0], "message": HOSTILE},
        {**raw[0], "message": forged.message(HOSTILE, None, engine.clock())},
        {**raw[0], "message": raw[0]["message"]},
    ]
    return parse_history([*on_top[::-1], *raw], record_rules(project_settings(engine.project_dir), "staging"))


def test_html_and_control_characters_in_free_text_are_escaped_never_markup() -> None:
    files = render_site(_page({"staging": _hostile_staging()}))
    for name, text in files.items():
        assert "<img" not in text and "\x1b" not in text and "\u202e" not in text and "\r" not in text, name
    assert html.escape('<img src=x onerror="alert(1)">', quote=True) in files["stack-staging.html"]
    assert "\\x1b[31m\\x0afake row" in files["stack-staging.html"]


def test_records_that_do_not_count_are_shown_at_the_top_and_never_counted() -> None:
    clean = _page({"staging": history_of(fixture_history().engine, "staging")}).stacks[0]
    hostile = _page({"staging": _hostile_staging()}).stacks[0]
    assert [(entry.number, entry.standing) for entry in hostile.not_counted] == [
        (16, "replayed"),
        (15, "unsigned"),
    ]
    assert hostile.unfinished == [] and hostile.unreviewed == []
    assert [release.id for release in hostile.releases] == [release.id for release in clean.releases]
    assert hostile.metrics is not None and clean.metrics is not None
    for metric in METRICS:
        assert hostile.metrics.figure(metric).to_json() == clean.metrics.figure(metric).to_json()
    index = render_site(_page({"staging": _hostile_staging()}))["index.html"]
    attention = index.split('<section class="attention"', 1)[1].split("</section>", 1)[0]
    assert "entry 16: a record that does not count (replayed)" in attention
    assert "entry 15: a record that does not count (unsigned)" in attention


def test_a_history_of_5000_entries_renders_its_last_releases_and_entries() -> None:
    now = fixture_history().engine.clock()
    entries = parse_history(long_history(5000, now - timedelta(minutes=5000)), STAGING_RULES)
    page = _page({"staging": entries})
    stack = page.stacks[0]
    assert len(stack.releases) == TIMELINE_RELEASES and len(stack.entries) == HISTORY_ENTRIES
    assert stack.not_counted == [] and stack.chain is not None and stack.chain.length == 5000
    # 1,667 releases of 3 entries; the last has only its stage and switch; every tenth rolled back
    assert [release.id for release in stack.unfinished] == [f"r-{1666:012x}"]
    assert stack.metrics is not None
    assert stack.metrics.figure("change failure rate").note == "166 failed of 1666 finished"
    assert f"r-{1666:012x}" in render_site(page)["stack-staging.html"]


def test_an_analysis_with_numbers_it_cannot_draw_gets_empty_bars_and_escaped_text() -> None:
    """A counted verify record whose analysis holds NaN, a limit with no number, a value below 0, a
    boolean and HTML: each bar is empty (never NaN or negative), each value shown as text."""
    odd = [
        {"name": "nan", "value": float("nan"), "limit": "<= 0.01", "outcome": "Inconclusive"},
        {"name": "garbled", "value": 0.5, "limit": "<= 1.2.3", "outcome": "Failed"},
        {"name": "negative", "value": -0.004, "limit": "<= 0.005 over green", "outcome": "Successful"},
        {"name": HOSTILE, "value": True, "limit": HOSTILE, "outcome": HOSTILE},
    ]
    chain, release = Chain(), "r-" + "1" * 12
    window = {"analysis": {"outcome": "Failed", "measurements": odd}}
    raw = [
        update("2026-11-23T09:01", record("stage", release=release), chain=chain),
        update("2026-11-23T09:02", record("verify", release=release, window=window), chain=chain),
    ]
    stack = render_site(_page({"staging": parse_history(raw[::-1], STAGING_RULES)}))["stack-staging.html"]
    chart = stack.split('<svg class="analysis"', 1)[1].split("</svg>", 1)[0]
    assert re.findall(r'<rect [^>]*width="([^"]*)"', chart) == ["0.0"] * 4
    assert re.findall(r'font-size="12">([^<]*)</text>', chart)[1::2] == ["-", "0.5", "-0.004", "-"]
    assert "<img" not in chart and "\x1b" not in chart
