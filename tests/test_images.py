"""ImageRef: one parser for every image reference and digest, at the boundary, with fullmatch."""

from __future__ import annotations

import pytest

from core.images import ImageRef, ImageRefError, fingerprint_of, parse_digest, parse_image, parse_pinned_image

DIGEST = "sha256:" + "ab" * 32


def test_a_pinned_reference_splits_into_repository_and_digest() -> None:
    image = parse_image(f"registry.example.test/platform/api@{DIGEST}")
    assert image == ImageRef("registry.example.test/platform/api", None, DIGEST)
    assert image.pinned and str(image) == f"registry.example.test/platform/api@{DIGEST}"


def test_a_tag_and_a_digest_together_keep_both() -> None:
    image = parse_image(f"registry.example.test/platform/api:1.4.2@{DIGEST}")
    assert (image.repository, image.tag, image.digest) == (
        "registry.example.test/platform/api",
        "1.4.2",
        DIGEST,
    )


def test_a_registry_port_belongs_to_the_repository_when_a_path_follows_it() -> None:
    assert parse_image("registry:5000/platform/api") == ImageRef("registry:5000/platform/api")
    assert parse_image(f"registry:5000/platform/api@{DIGEST}").repository == "registry:5000/platform/api"


def test_a_port_with_no_path_after_it_is_a_tag() -> None:
    assert parse_image("api:5000") == ImageRef("api", "5000")


def test_pinning_a_reference_to_a_digest_keeps_the_whole_repository_and_drops_the_tag() -> None:
    assert str(parse_image("registry:5000/platform/api:1.0").with_digest(DIGEST)) == (
        f"registry:5000/platform/api@{DIGEST}"
    )


@pytest.mark.parametrize(
    "text",
    [
        f"registry.example.test/platform/api@sha256:{'AB' * 32}",  # upper-case hex
        f"registry.example.test/platform/api@sha256:{'ab' * 31}",  # a short digest
        f"registry.example.test/platform/api@{DIGEST}\n",  # a trailing newline
        f" registry.example.test/platform/api@{DIGEST}",  # anything before it
        f"Registry.example.test/Platform/api@{DIGEST}",  # upper-case names
        "",
    ],
)
def test_malformed_references_are_refused_naming_the_form(text: str) -> None:
    with pytest.raises(ImageRefError, match="is not an image reference"):
        parse_image(text)


@pytest.mark.parametrize(
    "text", ["sha256:" + "AB" * 32, "sha256:" + "ab" * 31, "sha512:" + "ab" * 64, DIGEST + "\n"]
)
def test_malformed_digests_are_refused(text: str) -> None:
    with pytest.raises(ImageRefError, match="is not a digest"):
        parse_digest(text)


def test_a_tag_is_not_pinned() -> None:
    with pytest.raises(ImageRefError, match="not pinned by digest"):
        parse_pinned_image("registry.example.test/platform/api:latest")


def test_the_fingerprint_is_the_digests_first_twelve_hex_digits_and_stable_for_a_tag() -> None:
    assert parse_image(f"registry.example.test/platform/api@{DIGEST}").fingerprint() == "ab" * 6
    tagged = fingerprint_of("registry.example.test/platform/api:1.4.2")
    assert tagged == fingerprint_of("registry.example.test/platform/api:1.4.2") and len(tagged) == 12
    assert tagged != fingerprint_of("registry.example.test/platform/api:1.4.3")


def test_short_names_the_image_for_tables() -> None:
    assert parse_image(f"registry.example.test/platform/api@{DIGEST}").short() == f"api@sha256:{'ab' * 6}"
    assert parse_image("registry.example.test/platform/api:1.4.2").short() == "api:1.4.2"
