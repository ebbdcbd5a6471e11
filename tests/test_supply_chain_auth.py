"""Registry credentials (issue 26): the verifier authenticates as `docker login` left it (the Docker
config's `auths.<host>.auth`, answering a bearer challenge at the registry's token realm) or with
$RELEASE_REGISTRY_TOKEN, and never shows a credential in what it says.

The registry is the real one (tests/oci_registry.py) behind a front on 127.0.0.1 that demands a
bearer token the way a hosted registry does: 401 with `WWW-Authenticate: Bearer realm=...`, a token
from the realm for the right basic credentials, then every request forwarded with that token only.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from core.config.supply_chain import Enforcement, Severity, StackSupplyChain
from release.supply.gate import RegistryImageVerifier
from release.supply.registry import TOKEN_ENV, Limits
from tests.conftest import ROOT
from tests.oci_registry import NOW, Registry, built, running_registry
from tests.test_supply_chain import policy

USER, PASSWORD = "ci-reader", "test-only-password"
BEARER = "test-only-bearer-token"
ENFORCING = StackSupplyChain(mode=Enforcement.ENFORCE, refuse_severity=Severity.CRITICAL)


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with running_registry() as running:
        yield running


@contextmanager
def bearer_front(registry: Registry) -> Iterator[tuple[str, list[str]]]:
    """A front that asks for a bearer token; yields its host and every Authorization header it saw."""
    seen: list[str] = []
    upstream = httpx.Client(trust_env=False, timeout=10)

    class Front(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def _reply(self, status: int, headers: dict[str, str], body: bytes, send_body: bool) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def _handle(self, send_body: bool) -> None:
            authorization = self.headers.get("Authorization", "")
            seen.append(authorization)
            host = f"127.0.0.1:{self.server.server_port}"  # type: ignore[attr-defined]
            if self.path.startswith("/token"):
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if authorization != expected:
                    self._reply(401, {}, b"{}", send_body)
                    return
                self._reply(
                    200, {"Content-Type": "application/json"}, json.dumps({"token": BEARER}).encode(), True
                )
                return
            if authorization != f"Bearer {BEARER}":
                challenge = f'Bearer realm="http://{host}/token",service="test-registry"'
                self._reply(401, {"WWW-Authenticate": challenge}, b"", send_body)
                return
            accept = self.headers.get("Accept", "*/*")
            answer = upstream.request(self.command, f"{registry.url}{self.path}", headers={"Accept": accept})
            kept = {
                name: answer.headers[name]
                for name in ("Content-Type", "Docker-Content-Digest")
                if name in answer.headers
            }
            self._reply(answer.status_code, kept, answer.content, send_body)

        def do_GET(self) -> None:
            self._handle(send_body=True)

        def do_HEAD(self) -> None:
            self._handle(send_body=False)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        upstream.close()


def docker_config(directory: Path, host: str, password: str) -> dict[str, str]:
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return {"DOCKER_CONFIG": str(directory)}


def verify_with(env: dict[str, str], image: str) -> tuple[bool, str]:
    verdict = RegistryImageVerifier(env, ROOT, Limits()).verify(image, policy(), ENFORCING, NOW)
    return verdict.passed, json.dumps(verdict.to_json()) + "\n".join(verdict.lines())


def test_docker_login_credentials_answer_the_registrys_bearer_challenge(
    registry: Registry, tmp_path: Path
) -> None:
    image = built(registry, "behind-a-login")
    with bearer_front(registry) as (front, seen):
        passed, said = verify_with(
            docker_config(tmp_path, front, PASSWORD), image.replace(registry.host, front)
        )
    assert passed, said
    assert f"Bearer {BEARER}" in seen  # the token from the realm, not the password, reads the image


def test_a_token_in_the_environment_is_sent_as_the_bearer(registry: Registry) -> None:
    image = built(registry, "with-a-token")
    with bearer_front(registry) as (front, seen):
        passed, said = verify_with({TOKEN_ENV: BEARER}, image.replace(registry.host, front))
    assert passed, said
    assert not any(header.startswith("Basic") for header in seen)


def test_without_credentials_the_refusal_says_how_to_log_in(registry: Registry) -> None:
    image = built(registry, "no-credentials")
    with bearer_front(registry) as (front, _):
        passed, said = verify_with({}, image.replace(registry.host, front))
    assert not passed
    assert f"refused access (401) with no credentials; log in (`docker login {front}`)" in said


def test_a_wrong_password_is_refused_and_no_credential_is_ever_shown(
    registry: Registry, tmp_path: Path
) -> None:
    image = built(registry, "wrong-password")
    wrong = "test-only-wrong-password"
    with bearer_front(registry) as (front, _):
        env = docker_config(tmp_path, front, wrong)
        passed, said = verify_with(env, image.replace(registry.host, front))
    assert not passed and "with the Docker config's credentials" in said
    secret_forms = [wrong, base64.b64encode(f"{USER}:{wrong}".encode()).decode(), BEARER]
    assert not [form for form in secret_forms if form in said]
