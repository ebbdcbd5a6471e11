"""Preflight: before the first `up` of a deploy or a promotion, what the release will need from
outside is checked at once, so a release that could not finish is refused in seconds with nothing
changed (exit 3, every unmet precondition named with its fix) instead of failing minutes later and
rolling back.

Checked here: the Prometheus the analysis will query answers a trivial query, and every health URL's
host resolves (when the checks go over the network). Checked before this, each with its own refusal:
the state backend (the stack's config and history are read first), the stack lock (taken by the
command), the signing key and its trust (release.history.writer), GitHub's approval API for a
promotion that needs it (release.flows.promote).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from core.config.stack import AnalysisSettings
from core.errors import Precondition, PreflightError
from core.text import one_line
from release.analysis import QueryError, prometheus_query

RESOLVE_SECONDS = 5.0
"""How long all the health URLs' hosts together may take to resolve."""

TRIVIAL_QUERY = "vector(1)"


def preflight(
    stack: str, analysis: AnalysisSettings | None, urls: Iterable[str], resolve_hosts: bool
) -> None:
    """Raise PreflightError naming every unmet precondition; return when the release can start."""
    problems = []
    if analysis is not None:
        problems += prometheus_problems(analysis)
    if resolve_hosts:
        problems += unresolved_hosts(urls)
    if problems:
        raise PreflightError(stack, problems)


def prometheus_problems(analysis: AnalysisSettings) -> list[Precondition]:
    try:
        prometheus_query(analysis)(TRIVIAL_QUERY, None)
    except QueryError as error:
        return [
            Precondition(
                "prometheus",
                f"{analysis.prometheus_url} does not answer `{TRIVIAL_QUERY}`: {error}",
                "give this run --prometheus-url (e.g. a port-forward to Prometheus), or fix the stack's "
                "analysis.prometheusUrl",
            )
        ]
    return []


def unresolved_hosts(urls: Iterable[str]) -> list[Precondition]:
    """Every host of `urls` (IP literals aside) that does not resolve within RESOLVE_SECONDS in all.
    Each lookup runs on its own daemon thread: a resolver that never answers delays neither the
    refusal nor the process's exit."""
    named = {urlsplit(url).hostname or "" for url in urls}
    hosts = sorted(host for host in named if host and not _is_ip(host))
    failures: dict[str, BaseException | None] = {}

    def look_up(host: str) -> None:
        try:
            socket.getaddrinfo(host, None)
            failures[host] = None
        except Exception as error:  # noqa: BLE001 - any failure to resolve is the finding
            failures[host] = error

    lookups = [
        threading.Thread(target=look_up, args=(host,), name="preflight-dns", daemon=True) for host in hosts
    ]
    deadline = time.monotonic() + RESOLVE_SECONDS
    for lookup in lookups:
        lookup.start()
    for lookup in lookups:
        lookup.join(max(0.0, deadline - time.monotonic()))
    problems = []
    for host in hosts:
        if host not in failures:
            reason = f"no answer within {RESOLVE_SECONDS:g} s"
        elif failures[host] is not None:
            reason = one_line(str(failures[host]))[:200]
        else:
            continue
        problems.append(
            Precondition(
                "health URL",
                f"{host} does not resolve ({reason})",
                "check the stack's domain in DNS, or give --preview-url/--stable-url (e.g. a port-forward)",
            )
        )
    return problems


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
