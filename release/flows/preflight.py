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
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from core.config.stack import AnalysisSettings
from core.errors import Precondition, PreflightError
from core.text import one_line
from release.analysis import QueryError, prometheus_query

RESOLVE_SECONDS = 5.0
"""How long all the health URLs' hosts together may take to resolve."""

TRIVIAL_QUERY = "vector(1)"


def preflight(
    stack: str,
    analysis: AnalysisSettings | None,
    urls: Iterable[str],
    resolve_hosts: bool,
    env: Mapping[str, str] | None = None,
) -> None:
    """Raise PreflightError naming every unmet precondition; return when the release can start.
    `env` holds the proxy settings the checks go through (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY)."""
    problems = []
    if analysis is not None:
        problems += prometheus_problems(analysis)
    if resolve_hosts:
        problems += unresolved_hosts(urls, env or {})
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


def unresolved_hosts(urls: Iterable[str], env: Mapping[str, str] | None = None) -> list[Precondition]:
    """Every host of `urls` (IP literals aside) that does not resolve within RESOLVE_SECONDS in all.
    A URL the checks reach through a proxy (`env`, as httpx reads it) needs its proxy's host to
    resolve, not its own: the proxy resolves that. Each lookup runs on its own daemon thread: a
    resolver that never answers delays neither the refusal nor the process's exit."""
    via: dict[str, str] = {}  # a host to resolve -> why (a proxy's: the variable that names it)
    for url in urls:
        host, why = host_to_resolve(url, env or {})
        via.setdefault(host, why)
    hosts = sorted(host for host in via if host and not _is_ip(host))
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
        if via[host]:
            problems.append(
                Precondition(
                    "health URL",
                    f"the proxy {host} ({via[host]}) does not resolve ({reason})",
                    f"fix {via[host]}, or list the health hosts in NO_PROXY",
                )
            )
            continue
        problems.append(
            Precondition(
                "health URL",
                f"{host} does not resolve ({reason})",
                "check the stack's domain in DNS, or give --preview-url/--stable-url (e.g. a port-forward)",
            )
        )
    return problems


def host_to_resolve(url: str, env: Mapping[str, str]) -> tuple[str, str]:
    """The host that must resolve for a check of `url` to start, and, when it is a proxy's, the
    variable naming that proxy (`HTTPS_PROXY`...), else ''. Variables are read as httpx reads them:
    `<scheme>_proxy` then `all_proxy`, either case; `no_proxy` lists hosts (and their subdomains)
    reached directly, `*` for every host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _bypassed(host, _variable(env, "no_proxy")[1]):
        return host, ""
    for name in (f"{parts.scheme}_proxy", "all_proxy"):
        variable, proxy = _variable(env, name)
        if proxy:
            return urlsplit(proxy if "://" in proxy else f"http://{proxy}").hostname or "", variable
    return host, ""


def _variable(env: Mapping[str, str], name: str) -> tuple[str, str]:
    for spelled in (name.upper(), name):
        if env.get(spelled):
            return spelled, env[spelled].strip()
    return name.upper(), ""


def _bypassed(host: str, no_proxy: str) -> bool:
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        entry = entry.removeprefix("*").removeprefix(".").split(":")[0]
        if entry and (host == entry or host.endswith(f".{entry}")):
            return True
    return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
