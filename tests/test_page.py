"""`release page --out DIR`: the static site from the fixture history (tests/release_fixture_history.py:
real releases through the engine double), read as HTML and opened in Debian's headless Chromium
(tests/chromium.py): the DOM holds the rows and figures, no console error, and screenshots at phone
and desktop width are not blank. Screenshots go to $RELEASE_TEST_ARTIFACTS (CI uploads it), else to
pytest's tmp dir; never into the repository.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from release.cli import main
from tests.chromium import Tab, browser, inked_share
from tests.conftest import TEST_SECRETS
from tests.release_doubles import history_of
from tests.release_fixture_history import fixture_history

STACKS = ("staging", "production", "dev")
"""dev is not in the engine double: it cannot be read, and its section must say so."""
PHONE, DESKTOP = 390, 1280


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    engine = fixture_history().engine
    out = tmp_path_factory.mktemp("site")
    code = main(
        ["page", *STACKS, "--out", str(out), "--project-dir", str(engine.project_dir)],
        lambda _: engine,
        engine.clock,
    )
    assert code == 3  # dev cannot be read: the engine's exit code, after every other stack rendered
    return out


@pytest.fixture(scope="module")
def tab() -> Iterator[Tab]:
    with browser() as opened:
        yield opened


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("RELEASE_TEST_ARTIFACTS")
    directory = Path(given) / "page" if given else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def fixture_releases(stack: str = "staging") -> list[str]:
    """The fixture's release ids in `stack`, oldest first (staging: A, B, C and the canary abort D)."""
    records = [entry.record for entry in history_of(fixture_history().engine, stack)[::-1] if entry.record]
    return list(dict.fromkeys(record.release for record in records if record.release))


def pages(site: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(site.glob("*.html"))}


def open_page(tab: Tab, site: Path, name: str, width: int = DESKTOP) -> None:
    tab.errors.clear()
    tab.open((site / name).as_uri(), width, mobile=width == PHONE)


def texts(tab: Tab, selector: str) -> list[str]:
    return list(tab.evaluate(f"[...document.querySelectorAll({selector!r})].map(e => e.innerText.trim())"))


def timeline(tab: Tab) -> list[list[str]]:
    """The cells of each row of the open stack page's release timeline, newest release first."""
    return list(
        tab.evaluate(
            "[...[...document.querySelectorAll('table')]"
            ".find(t => t.caption.innerText.startsWith('The last')).querySelectorAll('tbody tr')]"
            ".map(r => [...r.cells].map(c => c.innerText.trim()))"
        )
    )


# -- the files --------------------------------------------------------------------------------------


def test_the_site_is_an_index_and_one_page_per_stack(site: Path) -> None:
    assert sorted(pages(site)) == [
        "index.html",
        "stack-dev.html",
        "stack-production.html",
        "stack-staging.html",
    ]


def test_no_page_runs_a_script_or_loads_anything(site: Path) -> None:
    for name, text in pages(site).items():
        assert "<script" not in text and "<link" not in text and " src=" not in text, name
        assert re.search(r"(?i)url\(", text) is None, name


def test_no_page_holds_a_secret_value(site: Path) -> None:
    for name, text in pages(site).items():
        for value in TEST_SECRETS.values():
            assert value not in text, name


# -- in Chromium --------------------------------------------------------------------------------------


def test_the_index_shows_the_stacks_side_by_side_with_each_live_digest(site: Path, tab: Tab) -> None:
    open_page(tab, site, "index.html")
    header = texts(tab, "main table thead th")[:4]
    assert header == ["service", "staging", "production", "dev"]
    api = texts(tab, "main table tbody tr:first-child td")
    assert api[0] == "api"
    assert "api@sha256:efefefefefef" in api[1] and "green live" in api[1] and "verified" in api[1]
    assert "api@sha256:efefefefefef" in api[2] and "blue live" in api[2]
    assert api[3] == "cannot be read"


def test_what_needs_attention_comes_first_open_reviews_and_an_unreadable_stack(site: Path, tab: Tab) -> None:
    open_page(tab, site, "index.html")
    assert texts(tab, "main > section:first-of-type h2") == ["Needs attention (3)"]
    items = texts(tab, "main > section:first-of-type li")
    assert sum("awaits review" in item for item in items) == 2
    assert any(item.startswith("dev: cannot be read: stack 'dev' does not exist") for item in items)


def test_the_dora_tiles_show_the_figures_test_metrics_checks(site: Path, tab: Tab) -> None:
    open_page(tab, site, "stack-staging.html")
    tiles = dict(zip(texts(tab, ".tile h3"), texts(tab, ".tile .value"), strict=True))
    assert tiles == {
        "deployment frequency": "0.93/week",
        "lead time for changes": "2.0 min",
        "change failure rate": "50%",
        "failed deployment recovery time": "1.2 min",
        "rework rate": "0%",
    }
    assert tab.evaluate("document.querySelectorAll('.tile svg polyline').length") == 1


def test_the_stack_page_lists_its_releases_with_their_steps_and_outcomes(site: Path, tab: Tab) -> None:
    open_page(tab, site, "stack-staging.html")
    assert len(timeline(tab)) == 4
    outcomes = [cell for cell in texts(tab, "td span.ok, td span.bad") if cell in ("Verified", "RolledBack")]
    assert outcomes == ["RolledBack", "Verified", "RolledBack", "Verified"]
    cells = texts(tab, "td")
    assert "stage → switch +60 s → rollback +60 s" in cells


def test_the_canary_abort_is_shown_stopped_at_its_canary_step_with_the_reason(site: Path, tab: Tab) -> None:
    open_page(tab, site, "stack-staging.html")
    newest = timeline(tab)[0]
    assert newest[4] == "stage → canary +60 s → rollback +90 s"  # it never switched
    assert newest[5] == "RolledBack\nrelease of api@sha256:c4c4c4c4c4c4 failed at canary 10%"


def test_a_canary_aborts_analysis_is_a_chart_of_each_value_against_its_limit(site: Path, tab: Tab) -> None:
    open_page(tab, site, "stack-staging.html")
    assert texts(tab, "h3:has(+ svg.analysis)") == [f"Analysis of {fixture_releases()[3]}: Failed"]
    label = tab.evaluate("document.querySelector('svg.analysis').getAttribute('aria-label')")
    assert label == (
        "value against limit (dashed line): requests 6000.0 (limit >= 50, Successful); "
        "error-ratio 0.02 (limit <= 0.01, Failed); error-increase 0.019 (limit <= 0.005 over green, Failed); "
        "p95-latency 0.5 (limit <= 2 s, Successful)"
    )
    bars = tab.evaluate(
        "[...document.querySelectorAll('svg.analysis rect')]"
        ".map(r => [r.getAttribute('width'), r.getAttribute('fill'), r.nextElementSibling.textContent])"
    )
    # 120 px is the limit: requests and both error ratios are past it (drawn to 150%), p95 at 25%
    assert bars == [
        ["180.0", "#0b5d1e", "6000"],
        ["180.0", "#8a1010", "0.02"],
        ["180.0", "#8a1010", "0.019"],
        ["30.0", "#0b5d1e", "0.5"],
    ]
    assert tab.evaluate("document.querySelector('svg.analysis line').getAttribute('x1')") == "230"


def test_a_drill_is_shown_against_its_targets(site: Path, tab: Tab) -> None:
    open_page(tab, site, "stack-production.html")
    row = texts(tab, "table:has(caption) tbody tr")
    drill = next(cells for cells in row if "Passed" in cells)
    assert "12 min (target 60 min: within)" in drill and "3 min (target 15 min: within)" in drill


def test_free_text_with_html_is_shown_as_text_never_as_markup(site: Path, tab: Tab) -> None:
    open_page(tab, site, "index.html")
    assert tab.evaluate("document.querySelectorAll('script, img, iframe').length") == 0
    assert "E broke refunds <script>alert(1)</script>" in tab.evaluate("document.body.innerText")


def test_every_page_has_one_h1_and_headed_tables(site: Path, tab: Tab) -> None:
    for name in pages(site):
        open_page(tab, site, name)
        assert tab.evaluate("document.querySelectorAll('h1').length") == 1, name
        assert tab.evaluate(
            "[...document.querySelectorAll('table')].every(t => t.querySelector('thead th[scope=col]'))"
        ), name


@pytest.mark.parametrize("width", [PHONE, DESKTOP], ids=["phone", "desktop"])
@pytest.mark.parametrize("name", ["index.html", "stack-production.html"])
def test_the_page_renders_without_console_errors_and_its_screenshot_is_not_blank(
    site: Path, tab: Tab, artifacts: Path, name: str, width: int
) -> None:
    open_page(tab, site, name, width)
    assert tab.errors == []
    assert tab.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling of the page
    tab.screenshot(artifacts / f"{name.removesuffix('.html')}-{width}.png")
    small = tab.screenshot(artifacts / f"{name.removesuffix('.html')}-{width}-check.png", scale=0.2)
    assert inked_share(small) > 0.02
