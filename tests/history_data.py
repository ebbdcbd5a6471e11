"""Stack history as `pulumi stack history --json` prints it (newest first), built entry by entry."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from core.config.signing import TrustedKey
from release.history.chain import ChainHead, genesis
from release.history.entries import HistoryEntry, RecordRules, parse_history
from release.history.records import Event, ReleaseRecord, record_time
from release.history.signing import Signer, TrustedKeys
from tests.release_doubles import TEST_KEYS, TEST_SIGNER

STAGING_RULES = RecordRules(
    "staging", TrustedKeys([TrustedKey(name="test", public_key=TEST_KEYS.public_key)]), require_signed=True
)
"""How staging judges records: only those signed by a trusted key (here the test session's) count."""

API = "registry.example.test/platform/api@sha256:"
GOOD = API + "aa" * 32
BAD = API + "bb" * 32
OLD = API + "cc" * 32


def releases(active: str = "blue", blue: str = GOOD, green: str = OLD) -> dict[str, Any]:
    return {"api": {"replicas": 2, "activeColor": active, "images": {"blue": blue, "green": green}}}


class Chain:
    """Links records as the tool writes them: each names the one before it on the stack, and its place."""

    def __init__(self, stack: str = "staging") -> None:
        self.head = ChainHead(genesis(stack), 0)

    def link(self, record: ReleaseRecord) -> ReleaseRecord:
        linked = replace(record, prev=self.head.prev, seq=self.head.seq + 1)
        self.head = ChainHead(linked.hash(), self.head.seq + 1)
        return linked


def update(
    finished: str,
    record: ReleaseRecord | None = None,
    result: str = "succeeded",
    config: dict[str, Any] | None = None,
    message: str = "",
    signer: Signer | None = TEST_SIGNER,
    chain: Chain | None = None,
) -> dict[str, Any]:
    """One entry; `finished` is an ISO time like 2026-11-23T09:30 (UTC). A record is signed (by the
    test key unless `signer` says otherwise) at that time, unless it carries its own; with `chain`
    it is linked onto it (as the tool writes records), else it is a record from before the chain."""
    end = datetime.fromisoformat(finished)
    if record is not None and not record.time:
        record = replace(record, time=record_time(end.replace(tzinfo=UTC)))
    if record is not None and chain is not None:
        record = chain.link(record)
    return {
        "version": 0,
        "kind": "update",
        "startTime": end.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "message": record.message(f"release {record.event} {record.service}", signer, end)
        if record
        else message,
        "environment": {"exec.kind": "cli"},
        "config": {
            "platform:releases": {"value": json.dumps(config or releases()), "secret": False},
            "platform:appSecrets": {"secret": True},
        },
        "result": result,
        "endTime": end.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "resourceChanges": {"same": 26},
    }


def record(event: str, image: str = GOOD, actor: str = "alice", **fields: Any) -> ReleaseRecord:
    return ReleaseRecord(Event(event), "staging", actor, service="api", image=image, **fields)


def history(*entries_oldest_first: dict[str, Any], rules: RecordRules = STAGING_RULES) -> list[HistoryEntry]:
    return parse_history(list(reversed(entries_oldest_first)), rules)
