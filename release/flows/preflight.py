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
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from urllib.parse import urlsplit

from core.config.stack import AnalysisSettings
from core.errors import Precondition, PreflightError
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
    """Every host of `urls` (IP literals aside) that does not resolve within RESOLVE_SECONDS in all."""
    hosts = sorted(
        {host for host in (urlsplit(url).hostname or "" for url in urls) if host and not _is_ip(host)}
    )
    if not hosts:
        return []
    pool = ThreadPoolExecutor(max_workers=min(4, len(hosts)), thread_name_prefix="preflight-dns")
    lookups = {host: pool.submit(socket.getaddrinfo, host, None) for host in hosts}
    wait(lookups.values(), timeout=RESOLVE_SECONDS)
    pool.shutdown(wait=False, cancel_futures=True)
    problems = []
    for host, lookup in lookups.items():
        if not lookup.done():
            reason = f"no answer within {RESOLVE_SECONDS:g} s"
        elif lookup.exception() is not None:
            reason = str(lookup.exception())[:200]
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
