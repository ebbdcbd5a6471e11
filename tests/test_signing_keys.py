"""Keys that really retire (issue 23, items 1 and 4): a record the tool would write that would not
count is refused before any change, and one key can never be trusted under two spellings or names."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from core.config.sources import project_settings
from core.errors import ConfigError, StackFileError, UsageError
from release.cli import main
from release.history.signing import Signer, generate_key_pair
from release.testing.fake_engine import FakeEngine
from tests.conftest import copy_project, edit_yaml
from tests.release_doubles import FAST_BLUE_GREEN, TEST_KEYS

REJECT = [
    "reject",
    "staging",
    "--service",
    "api",
    "--digest",
    "sha256:" + "ab" * 32,
    "--reason",
    "a bad build",
]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def respelled(key: str) -> str:
    """The same 32 bytes in base64 with the last character's unused low bit flipped: decodes alike."""
    flipped = ALPHABET[ALPHABET.index(key[42]) ^ 1]
    return key[:42] + flipped + "="


def with_trusted_keys(project: Path, keys: list[dict[str, Any]]) -> None:
    def replace(document: dict[str, Any]) -> None:
        document["config"]["releaseSigning"]["value"]["trustedKeys"] = keys

    edit_yaml(project / "Pulumi.yaml", replace)


def refusal(project: Path) -> str:
    with pytest.raises((ConfigError, StackFileError)) as raised:
        project_settings(project)
    return str(raised.value)


def test_the_respelled_key_decodes_to_the_same_bytes() -> None:
    key = TEST_KEYS.public_key
    assert respelled(key) != key and base64.b64decode(respelled(key)) == base64.b64decode(key)


def test_a_retired_key_listed_again_under_a_new_name_in_another_spelling_is_refused(tmp_path: Path) -> None:
    key = TEST_KEYS.public_key
    with_trusted_keys(
        copy_project(tmp_path),
        [
            {"name": "ci-2026-11", "publicKey": key, "retiredAfter": "2020-01-01T00:00:00Z"},
            {"name": "ci-2027-05", "publicKey": respelled(key)},
        ],
    )
    message = refusal(tmp_path)
    assert "canonical base64" in message and "trustedKeys" in message


def test_one_key_under_two_names_is_refused_naming_both_entries(tmp_path: Path) -> None:
    key = TEST_KEYS.public_key
    with_trusted_keys(
        copy_project(tmp_path),
        [{"name": "ci-2026-11", "publicKey": key}, {"name": "ci-2027-05", "publicKey": key}],
    )
    assert "entries 0 (ci-2026-11) and 1 (ci-2027-05) have the same public key" in refusal(tmp_path)


def test_two_keys_under_one_name_are_refused(tmp_path: Path) -> None:
    other = generate_key_pair().public_key
    with_trusted_keys(
        copy_project(tmp_path),
        [
            {"name": "ci-2026-11", "publicKey": TEST_KEYS.public_key},
            {"name": "ci-2026-11", "publicKey": other},
        ],
    )
    assert "entries 0 (ci-2026-11) and 1 (ci-2026-11) have the same name" in refusal(tmp_path)


def test_a_signing_key_in_a_non_canonical_spelling_is_refused_without_showing_it() -> None:
    spelled = respelled(TEST_KEYS.private_key)
    with pytest.raises(UsageError) as raised:
        Signer.from_text(spelled)
    assert spelled not in str(raised.value) and "not shown" in str(raised.value)


def staging_with_retired_test_key(project: Path) -> FakeEngine:
    """Staging on the engine double, with the test key retired in the past: the state of one
    environment during a rotation, before its RELEASE_SIGNING_KEY is replaced."""
    with_trusted_keys(
        copy_project(project),
        [{"name": "test-session", "publicKey": TEST_KEYS.public_key, "retiredAfter": "2026-11-01T00:00:00Z"}],
    )
    engine = FakeEngine(project_dir=project)
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    return engine


@pytest.mark.parametrize(
    "argv",
    [[*REJECT, "--force"], ["promote", "dev", "staging", "--service", "api"]],
    ids=["reject", "promote"],
)
def test_a_retired_signing_key_is_refused_before_any_change(
    tmp_path: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = staging_with_retired_test_key(tmp_path)
    engine.add_stack("dev", edit=FAST_BLUE_GREEN)
    engine.ups.clear()
    monkeypatch.setenv("RELEASE_SIGNING_KEY", TEST_KEYS.private_key)
    code = main([*argv, "--project-dir", str(tmp_path)], lambda _: engine, engine.clock)
    error = capsys.readouterr().err
    assert code == 2, error
    assert "'test-session'" in error and "retired after 2026-11-01" in error and "replace" in error
    assert engine.ups == []


def test_a_key_retired_after_the_moment_it_signs_still_signs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = staging_with_retired_test_key(tmp_path)
    engine.clock.set(engine.clock().replace(year=2026, month=10, day=30))  # before the retirement
    monkeypatch.setenv("RELEASE_SIGNING_KEY", TEST_KEYS.private_key)
    assert main([*REJECT, "--force", "--project-dir", str(tmp_path)], lambda _: engine, engine.clock) == 0
    assert len(engine.ups) == 1
