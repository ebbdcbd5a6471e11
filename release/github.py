"""Proof of a GitHub environment approval, read from GitHub's REST API rather than asserted.

Inside GitHub Actions, a job that declares `environment: production` waits until one of the
environment's required reviewers approves it, and GitHub records who did in the run's review
history. `read_environment_approval` reads that history and the run's head commit,

    GET {GITHUB_API_URL}/repos/{owner}/{repo}/actions/runs/{GITHUB_RUN_ID}/approvals
        entries of `state` (approved, rejected, pending), `user.login`, `comment` and
        `environments[].name`; an entry carries no time and no attempt number
    GET {GITHUB_API_URL}/repos/{owner}/{repo}/commits/{GITHUB_SHA}
        the commit, with `author` (the GitHub account GitHub links to the commit's author email, or
        null) and `commit.author.name` (the git author name)

with the job's `GITHUB_TOKEN` (it needs `permissions: actions: read` and `contents: read`), and
returns the approval of one environment as an `EnvironmentApproval`: who approved it, their
comments, who triggered the run, whose commit it runs and a link to it. Anything short of an
approval is an `ApprovalEvidenceError` naming what is wrong and how to fix it: a missing or malformed
variable, an environment nobody reviewed, a rejection, a review still pending, an error status, a
body that is not GitHub's answer or is over 1 MiB, a transport failure, or no complete answer within
`timeout_seconds` (a hard deadline over both requests, not per read). The token is sent only as a
Bearer header, over https (or to a loopback address, for tests), and never appears in a result or an
error message.

Four eyes is the gate's rule, not this module's: release.gates compares the person releasing, the
run's actors and the commit's author with `approvers`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

import httpx

from core.errors import ApprovalEvidenceError
from release.clock import Clock, system_clock

__all__ = [
    "MAX_BODY_BYTES",
    "SOURCE",
    "EnvironmentApproval",
    "in_github_actions",
    "read_environment_approval",
]

SOURCE = "github-environment"
API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
MAX_BODY_BYTES = 1024 * 1024
"""The largest review history read; a longer body is refused after reading this much."""
MAX_ERROR_BODY_BYTES = 64 * 1024
"""How much of an error answer is read for GitHub's `message`."""
REQUIRED = ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_ACTOR", "GITHUB_SHA", "GITHUB_TOKEN")
STATES = ("approved", "rejected", "pending")
CHECK_API_URL = (
    f"check that GITHUB_API_URL is GitHub's API ({DEFAULT_API_URL}, or your GitHub Enterprise's /api/v3)"
)
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

RUN_ID = re.compile(r"[0-9]{1,20}")
RUN_ATTEMPT = re.compile(r"[1-9][0-9]{0,3}")
COMMIT_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
"""A full SHA-1 or SHA-256 commit id, lower-case, as GitHub sets GITHUB_SHA."""
"""ASCII digits only (`\\d` would take other scripts' digits too)."""
REPOSITORY = re.compile(r"(?P<owner>[A-Za-z0-9][A-Za-z0-9-]{0,38})/(?P<repo>[A-Za-z0-9._-]{1,100})")
"""`owner/repo` with the characters GitHub allows; `.` and `..` are refused separately."""
TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
"""Visible ASCII: anything else could not be sent in a header (and would be echoed by the error)."""

Refuse = Callable[[str, str, str], NoReturn]
"""Raise the module's error: (kind, what is wrong, how to fix it)."""


def in_github_actions(env: Mapping[str, str]) -> bool:
    """True inside a GitHub Actions job (GitHub sets GITHUB_ACTIONS=true there)."""
    return env.get("GITHUB_ACTIONS") == "true"


@dataclass(frozen=True)
class EnvironmentApproval:
    """GitHub's record that `environment` was approved in the running workflow run."""

    environment: str
    approvers: tuple[str, ...]
    """Logins of the reviewers who approved `environment`, in the order GitHub lists them."""
    comments: tuple[str, ...]
    """The non-empty comments those approvals carry."""
    actor: str
    """Who triggered the run's first attempt (GITHUB_ACTOR)."""
    run_url: str
    read_at: str
    """When this tool read the review history (UTC, ISO 8601)."""
    triggering_actor: str = ""
    """Who started this attempt (GITHUB_TRIGGERING_ACTOR; the same as `actor` on a first run)."""
    commit_sha: str = ""
    """The commit the run runs (GITHUB_SHA)."""
    commit_author: str = ""
    """The GitHub login GitHub links to that commit's author; '' when it links none."""
    commit_author_name: str = ""
    """The commit's git author name (what is shown when GitHub links no login)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": SOURCE,
            "environment": self.environment,
            "approvers": list(self.approvers),
            "comments": list(self.comments),
            "actor": self.actor,
            "triggeringActor": self.triggering_actor,
            "commit": self.commit_sha,
            "commitAuthor": self.commit_author,
            "commitAuthorName": self.commit_author_name,
            "runUrl": self.run_url,
            "readAt": self.read_at,
        }


@dataclass(frozen=True)
class _Review:
    state: str
    login: str
    comment: str
    environments: tuple[str, ...]


@dataclass(frozen=True)
class _Run:
    """The validated identity of the run and where to ask about it."""

    environment: str
    api_url: str
    repository: str
    run_id: str
    actor: str
    token: str = field(repr=False)
    run_url: str = ""
    triggering_actor: str = ""
    attempt: int = 1
    head_sha: str = ""

    @property
    def approvals_url(self) -> str:
        return f"{self.api_url}/repos/{self.repository}/actions/runs/{self.run_id}/approvals"

    @property
    def commit_url(self) -> str:
        return f"{self.api_url}/repos/{self.repository}/commits/{self.head_sha}"

    def refuse(self, kind: str, problem: str, fix: str) -> NoReturn:
        """Raise the one error this module raises, with the token taken out of every word of it."""
        raise ApprovalEvidenceError(
            _redact(self.environment, self.token),
            kind,
            _redact(problem, self.token),
            _redact(fix, self.token),
        )


def read_environment_approval(
    env: Mapping[str, str], environment: str, timeout_seconds: float = 10.0, clock: Clock = system_clock
) -> EnvironmentApproval:
    """Read the running workflow run's review history and return the approval of `environment`.

    Raises `ApprovalEvidenceError` (and nothing else) when it does not prove one. Blocks for at most
    `timeout_seconds`; runs on a private event loop, so call it from synchronous code.
    """
    if not (isinstance(timeout_seconds, int | float) and math.isfinite(timeout_seconds)):
        raise ValueError(f"timeout_seconds must be a finite number of seconds, got {timeout_seconds!r}")
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
    run = _run_from(env, environment)
    if run.attempt > 1:
        run.refuse(
            "re-run",
            f"this is attempt {run.attempt} of run {run.run_url}: GitHub's review history lists the "
            "run's reviews without the attempt they approved, so an approval of an earlier attempt "
            "cannot be told from one of this attempt",
            "start a new run of the workflow (not a re-run), so the environment's reviewers approve it",
        )
    review_history, commit = _fetch(run, timeout_seconds)
    read_at = clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    reviews = _parse(run, review_history)
    author, author_name = _commit_author(run, commit)
    approval = _approval(run, reviews, read_at)
    return replace(approval, commit_sha=run.head_sha, commit_author=author, commit_author_name=author_name)


# --- the boundary: the environment GitHub sets ---------------------------------------------------


def _run_from(env: Mapping[str, str], environment: str) -> _Run:
    values = {name: (env.get(name) or "").strip() for name in REQUIRED}
    token = values["GITHUB_TOKEN"]
    name = environment.strip()

    def refuse(kind: str, problem: str, fix: str) -> NoReturn:
        _Run(name, "", "", "", "", token, "").refuse(kind, problem, fix)

    if not name:
        refuse("invalid-env", "no environment name was given", "name the GitHub environment to check")
    missing = [variable for variable in REQUIRED if not values[variable]]
    if missing:
        refuse(
            "missing-env",
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set",
            "run inside the GitHub Actions job that declares this environment; GitHub sets "
            "GITHUB_REPOSITORY, GITHUB_RUN_ID, GITHUB_ACTOR and GITHUB_SHA, and the job must pass its "
            "token: `env: GITHUB_TOKEN: ${{ github.token }}` with `permissions: actions: read`",
        )
    repository = REPOSITORY.fullmatch(values["GITHUB_REPOSITORY"])
    if repository is None or repository.group("repo") in (".", ".."):
        refuse(
            "invalid-env",
            f"GITHUB_REPOSITORY {values['GITHUB_REPOSITORY']!r} is not 'owner/repo'",
            "leave GITHUB_REPOSITORY as GitHub sets it (letters, digits, '-', and '.', '_' in the name)",
        )
    if RUN_ID.fullmatch(values["GITHUB_RUN_ID"]) is None:
        refuse(
            "invalid-env",
            f"GITHUB_RUN_ID {values['GITHUB_RUN_ID']!r} is not a run number",
            "leave GITHUB_RUN_ID as GitHub sets it (digits only)",
        )
    if COMMIT_SHA.fullmatch(values["GITHUB_SHA"]) is None:
        refuse(
            "invalid-env",
            f"GITHUB_SHA {values['GITHUB_SHA']!r} is not a full commit SHA",
            "leave GITHUB_SHA as GitHub sets it (40 lower-case hex digits)",
        )
    if TOKEN.fullmatch(token) is None:
        refuse(
            "invalid-env",
            "GITHUB_TOKEN is not a token (it holds spaces or characters outside visible ASCII)",
            "pass the job's token unchanged: `env: GITHUB_TOKEN: ${{ github.token }}`",
        )
    api_url = _base_url(env, "GITHUB_API_URL", DEFAULT_API_URL, refuse, token_goes_there=True)
    server_url = _base_url(env, "GITHUB_SERVER_URL", DEFAULT_SERVER_URL, refuse, token_goes_there=False)
    attempt = (env.get("GITHUB_RUN_ATTEMPT") or "1").strip()
    if RUN_ATTEMPT.fullmatch(attempt) is None:
        refuse(
            "invalid-env",
            f"GITHUB_RUN_ATTEMPT {attempt!r} is not an attempt number",
            "leave GITHUB_RUN_ATTEMPT as GitHub sets it (1 for a first run)",
        )
    slug, run_id = repository.group(0), values["GITHUB_RUN_ID"]
    return _Run(
        name,
        api_url,
        slug,
        run_id,
        values["GITHUB_ACTOR"],
        token,
        f"{server_url}/{slug}/actions/runs/{run_id}",
        triggering_actor=(env.get("GITHUB_TRIGGERING_ACTOR") or "").strip() or values["GITHUB_ACTOR"],
        attempt=int(attempt),
        head_sha=values["GITHUB_SHA"],
    )


def _base_url(
    env: Mapping[str, str], variable: str, default: str, refuse: Refuse, token_goes_there: bool
) -> str:
    """A plain http(s) base URL from `variable`; the token goes over https or to loopback only."""
    text = (env.get(variable) or "").strip() or default
    fix = f"leave {variable} as GitHub sets it, or unset it for {default}"
    if any(character in text for character in "?#@\\") or any(ord(c) <= 0x20 for c in text):
        refuse("invalid-env", f"{variable} {text!r} is not a plain URL (no user, query or fragment)", fix)
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError):
        refuse("invalid-env", f"{variable} {text!r} is not a URL", fix)
    if url.scheme not in ("https", "http") or not url.host:
        refuse("invalid-env", f"{variable} {text!r} is not an http(s) URL", fix)
    if token_goes_there and url.scheme == "http" and url.host not in LOOPBACK_HOSTS:
        refuse(
            "invalid-env",
            f"{variable} {text!r} is plain http: the token would cross the network unencrypted",
            f"use an https URL ({default})",
        )
    return text.rstrip("/")


# --- the exchange: two GETs under one deadline ---------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool


@dataclass(frozen=True)
class _Ask:
    """One request of the exchange: what it reads (for messages) and where."""

    what: str
    """What the answer holds: 'the review history of run <url>'."""
    thing: str
    """What GitHub may not know: 'run 4242 of owner/repo'."""
    url: str


def _fetch(run: _Run, timeout_seconds: float) -> tuple[bytes, bytes]:
    """The review history's body and the head commit's, or a refusal; both requests together end
    within `timeout_seconds`.

    httpx's timeouts bound each connect and read, so a server trickling a byte at a time never trips
    them: the exchange runs under `asyncio.wait_for` on a private loop (the thread's own loop, which
    Pulumi's runtime keeps using, is left alone).
    """
    asks = (
        _Ask(
            f"the review history of run {run.run_url}",
            f"run {run.run_id} of {run.repository}",
            run.approvals_url,
        ),
        _Ask(f"commit {run.head_sha}", f"commit {run.head_sha} of {run.repository}", run.commit_url),
    )
    failure = ""
    timed_out = False
    answers: list[tuple[_Ask, _Answer]] = []
    loop = asyncio.new_event_loop()
    try:
        exchange = _exchange(run, asks, answers, timeout_seconds)
        loop.run_until_complete(asyncio.wait_for(exchange, timeout_seconds))
    except (TimeoutError, httpx.TimeoutException):  # the deadline, or one read past it
        timed_out = True
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, ValueError) as error:
        failure = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
    # Refused outside the except blocks: the httpx error (whose request holds the token) is not chained.
    for ask, answer in answers:  # an answer that arrived in full is judged before a later failure
        if not 200 <= answer.status < 300:
            _refuse_status(run, answer, ask)
        if answer.truncated:
            run.refuse(
                "too-large",
                f"{ask.what} is over {MAX_BODY_BYTES // 1024} KiB; it was not read further",
                CHECK_API_URL,
            )
    if timed_out:
        run.refuse(
            "timeout",
            f"GitHub's API ({run.api_url}) did not answer in full within {timeout_seconds:g}s",
            "retry; if it persists, check https://www.githubstatus.com and the runner's network",
        )
    if len(answers) < len(asks):
        run.refuse(
            "transport",
            f"the request to GitHub's API ({run.api_url}) failed: {_printable(failure)}",
            "retry; if it persists, check GITHUB_API_URL, the runner's network and https://www.githubstatus.com",
        )
    return answers[0][1].body, answers[1][1].body


async def _exchange(
    run: _Run, asks: tuple[_Ask, ...], answers: list[tuple[_Ask, _Answer]], timeout_seconds: float
) -> None:
    """Ask in order, appending each complete answer; stop at the first that is not a success."""
    headers = {
        "Authorization": f"Bearer {run.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "platform-release",
        "Accept-Encoding": "identity",
    }
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), follow_redirects=False) as client:
        for ask in asks:
            answer = await _get(client, ask.url, headers)
            answers.append((ask, answer))
            if answer.truncated or not 200 <= answer.status < 300:
                return


async def _get(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> _Answer:
    async with client.stream("GET", url, headers=headers) as response:
        ok = 200 <= response.status_code < 300
        cap = MAX_BODY_BYTES if ok else MAX_ERROR_BODY_BYTES
        declared = response.headers.get("Content-Length", "")
        if ok and declared.isdigit() and int(declared) > cap:
            return _Answer(response.status_code, response.headers, b"", True)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            if len(body) + len(chunk) > cap:
                body += chunk[: cap - len(body)]
                return _Answer(response.status_code, response.headers, bytes(body), True)
            body += chunk
        return _Answer(response.status_code, response.headers, bytes(body), False)


def _refuse_status(run: _Run, answer: _Answer, ask: _Ask) -> NoReturn:
    status = answer.status
    said = _github_message(answer.body)
    told = f": {said}" if said else ""
    if status == 401:
        run.refuse(
            "unauthorized",
            f"GitHub refused the token (401{told})",
            "pass the job's own token, unexpired: `env: GITHUB_TOKEN: ${{ github.token }}`",
        )
    if status in (403, 429):
        limited = answer.headers.get("X-RateLimit-Remaining") == "0" or "rate limit" in said.lower()
        if status == 429 or limited:
            reset = answer.headers.get("X-RateLimit-Reset", "")
            when = (
                datetime.fromtimestamp(int(reset), UTC).strftime("%H:%M:%S UTC")
                if reset.isdigit() and len(reset) <= 12
                else "the limit resets"
            )
            run.refuse(
                "rate-limited",
                f"GitHub's API rate limit is exhausted ({status}{told})",
                f"retry after {when}",
            )
        run.refuse(
            "forbidden",
            f"the token may not read {ask.what} (403{told})",
            "give the job `permissions: actions: read` and `contents: read`",
        )
    if status in (404, 422):
        run.refuse(
            "not-found",
            f"GitHub knows no {ask.thing}, or the token cannot see it ({status}{told})",
            "leave GITHUB_REPOSITORY, GITHUB_RUN_ID and GITHUB_SHA as GitHub sets them, and give the "
            "job `permissions: actions: read` and `contents: read`",
        )
    run.refuse(
        "status",
        f"GitHub's API answered {status} for {ask.what}{told}",
        "retry; if it persists, check GITHUB_API_URL and https://www.githubstatus.com",
    )


def _github_message(body: bytes) -> str:
    """GitHub's `message` from an error answer, cleaned up for a one-line error (or '')."""
    document, _ = _json(body)
    message = document.get("message") if isinstance(document, dict) else None
    return _printable(message)[:200] if isinstance(message, str) else ""


# --- the answer: GitHub's review list --------------------------------------------------------------


def _document(run: _Run, body: bytes, what: str, kind: type) -> Any:
    """The JSON document of a successful answer, of the expected `kind` (list or dict), or a refusal
    saying that `what` ("the review history of run <url> is not GitHub's list of reviews") is not."""
    document, failure = _json(body)
    if failure:
        _malformed(run, what, failure)
    if not isinstance(document, kind):
        _malformed(
            run, what, f"a JSON {type(document).__name__}, not {'a list' if kind is list else 'an object'}"
        )
    return document


def _malformed(run: _Run, what: str, problem: str) -> NoReturn:
    run.refuse("malformed", f"{what}: {problem}", CHECK_API_URL)


def _parse(run: _Run, body: bytes) -> list[_Review]:
    what = f"the review history of run {run.run_url} is not GitHub's list of reviews"
    reviews = []
    for number, entry in enumerate(_document(run, body, what, list)):
        problem, review = _review(entry)
        if review is None:
            _malformed(run, what, f"entry {number}: {problem}")
        reviews.append(review)
    return reviews


def _commit_author(run: _Run, body: bytes) -> tuple[str, str]:
    """The head commit author's GitHub login ('' when GitHub links none) and git author name."""
    what = f"the answer for commit {run.head_sha} of {run.repository} is not GitHub's commit"
    document = _document(run, body, what, dict)
    if document.get("sha") != run.head_sha:
        _malformed(run, what, f"'sha' is {_shown(document.get('sha'))}")
    author = document.get("author")
    if author is not None and not isinstance(author, dict):
        _malformed(run, what, f"'author' is {_shown(author)}, not an account or null")
    login = author.get("login") if isinstance(author, dict) else ""
    if not isinstance(login, str):
        _malformed(run, what, f"'author.login' is {_shown(login)}, not text")
    git = document.get("commit")
    git_author = git.get("author") if isinstance(git, dict) else None
    name = git_author.get("name") if isinstance(git_author, dict) else None
    shown_name = _printable(name)[:100] if isinstance(name, str) else ""
    return _redact(_printable(login), run.token), _redact(shown_name, run.token)


def _json(body: bytes) -> tuple[object, str]:
    """The parsed body, or why it is not JSON."""
    try:
        return json.loads(body), ""
    except ValueError as error:
        return None, f"not JSON ({_printable(str(error))[:120]})"
    except RecursionError:
        return None, "not JSON (nested too deeply)"


def _review(entry: object) -> tuple[str, _Review | None]:
    """One review, or what is wrong with it."""
    if not isinstance(entry, dict):
        return "not an object", None
    state = entry.get("state")
    if state not in STATES:
        return f"'state' is {_shown(state)}, not one of {', '.join(STATES)}", None
    user = entry.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    if not isinstance(login, str) or not login.strip():
        return "'user.login' is missing", None
    comment = entry.get("comment")
    if comment is not None and not isinstance(comment, str):
        return f"'comment' is {_shown(comment)}, not text", None
    environments = entry.get("environments")
    if not isinstance(environments, list):
        return "'environments' is not a list", None
    names = [item.get("name") if isinstance(item, dict) else None for item in environments]
    if not all(isinstance(name, str) for name in names):
        return "an environment has no 'name'", None
    return "", _Review(str(state), login.strip(), (comment or "").strip(), tuple(map(str, names)))


def _approval(run: _Run, reviews: list[_Review], read_at: str) -> EnvironmentApproval:
    wanted = run.environment.casefold()  # GitHub environment names are not case sensitive
    mine = [review for review in reviews if any(name.casefold() == wanted for name in review.environments)]
    if not mine:
        others = sorted({name for review in reviews for name in review.environments})
        seen = f"reviewed: {', '.join(others)}" if others else "no environment was reviewed"
        run.refuse(
            "not-reviewed",
            f"run {run.run_url} has no review of environment '{run.environment}' ({seen})",
            f"run this in a job with `environment: {run.environment}`, an environment with required "
            "reviewers (without reviewers GitHub records no approval)",
        )
    rejections = [review for review in mine if review.state == "rejected"]
    if rejections:
        who = "; ".join(
            f"{review.login} rejected it: "
            + (f'"{_printable(review.comment)}"' if review.comment else "(no comment)")
            for review in rejections
        )
        run.refuse(
            "rejected",
            f"environment '{run.environment}' was rejected in run {run.run_url}: {who}",
            "address the reviewer's comment, then start a new run for a new review",
        )
    approved = [review for review in mine if review.state == "approved"]
    if not approved:
        run.refuse(
            "pending",
            f"environment '{run.environment}' is still pending review in run {run.run_url}; "
            "nobody approved it",
            f"a required reviewer of '{run.environment}' approves the deployment on the run's page; "
            "run this in the job that waits for it",
        )
    return EnvironmentApproval(  # the token is taken out of what the server said, too
        environment=run.environment,
        approvers=tuple(dict.fromkeys(_redact(review.login, run.token) for review in approved)),
        comments=tuple(_redact(review.comment, run.token) for review in approved if review.comment),
        actor=run.actor,
        run_url=run.run_url,
        read_at=read_at,
        triggering_actor=run.triggering_actor,
    )


def _shown(value: object) -> str:
    return _printable(json.dumps(value))[:60] if value is not None else "missing"


def _printable(text: str) -> str:
    """Text from a server, on one line and without control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _redact(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
