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
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping

import httpx
from httpx._utils import URLPattern, is_ipv4_hostname, is_ipv6_hostname  # how httpx picks a proxy

from core.config.stack import AnalysisSettings
from core.errors import Precondition, PreflightError
from core.text import one_line
from release.analysis import QueryError, prometheus_query

RESOLVE_SECONDS = 5.0
"""How long all the health URLs' hosts together may take to resolve."""

TRIVIAL_QUERY = "vector(1)"
PROXY_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+")
"""A host name or an IP address (httpx unwraps an IPv6 literal's brackets); anything else is no proxy."""


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
    bad_proxies: set[str] = set()
    for url in urls:
        host, why = host_to_resolve(url, env or {})
        if not host and why:
            bad_proxies.add(why)
            continue
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
    problems = [
        Precondition(
            "health URL",
            f"{variable} is not a proxy URL (the health checks go through it)",
            f"fix {variable} (e.g. http://proxy.example.test:3128), or unset it",
        )
        for variable in sorted(bad_proxies)
    ]
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
    variable naming that proxy (`HTTPS_PROXY`...), else ''. The proxy is chosen as the checks' HTTP
    client (httpx) chooses it from the environment: urllib's reading of the `*_proxy` variables (a
    lower-case one wins; an empty one cancels), then the most specific of httpx's patterns for
    `no_proxy` (`*`, hosts, `.domain` for subdomains only, IP addresses, `scheme://host`).
    A proxy that is not a URL comes back as host '' with its variable, for the caller to name."""
    target = httpx.URL(url)
    for key, proxy in sorted(_proxy_mounts(env).items(), key=lambda item: URLPattern(item[0])):
        if URLPattern(key).matches(target):
            if proxy is None:
                return target.host, ""
            variable = f"{key.split(':', 1)[0].upper()}_PROXY"
            try:
                host = httpx.URL(proxy).host
            except (httpx.InvalidURL, ValueError):
                return "", variable
            return (host if PROXY_HOST.fullmatch(host) else ""), variable
    return target.host, ""


def _proxy_mounts(env: Mapping[str, str]) -> dict[str, str | None]:
    """httpx's `get_environment_proxies()`, read from `env` rather than the process's environment."""
    info = _environment_proxies(env)
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        if info.get(scheme):
            proxy = info[scheme]
            mounts[f"{scheme}://"] = proxy if "://" in proxy else f"http://{proxy}"
    for host in (part.strip() for part in info.get("no", "").split(",")):
        if host == "*":
            return {}
        if not host:
            continue
        if "://" in host:
            mounts[host] = None
        elif is_ipv4_hostname(host) or host.lower() == "localhost":
            mounts[f"all://{host}"] = None
        elif is_ipv6_hostname(host):
            mounts[f"all://[{host}]"] = None
        else:
            mounts[f"all://*{host}"] = None
    return mounts


def _environment_proxies(env: Mapping[str, str]) -> dict[str, str]:
    """`urllib.request.getproxies_environment()` (what httpx reads) over `env`."""
    info: dict[str, str] = {}
    for name, value in env.items():
        if value and name.lower().endswith("_proxy"):
            info[name.lower()[:-6]] = value
    if "REQUEST_METHOD" in env:  # as urllib: under CGI, HTTP_PROXY may come from a request header
        info.pop("http", None)
    for name, value in env.items():  # lower-case names win; an empty one cancels the proxy
        if name.endswith("_proxy"):
            if value:
                info[name.lower()[:-6]] = value
            else:
                info.pop(name.lower()[:-6], None)
    return info


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
