"""The release record: a structured, parseable line at the end of every update message we write.

Evidence of what was released, verified, rejected or rolled back lives in the stack's own history in
the Pulumi state backend, where every operator and CI runner reads the same thing and nothing is lost
with a laptop. Each update the release tool runs carries its record in the update message:

    <summary for humans> [by <actor>] release/v1 {"event": "verify", "service": "api", ...}

`release/v1` marks the record; the JSON after it (one line, keys sorted) has:

    event        stage | switch | verify | rollback | reject | review
    stack        the stack the update ran on
    service      the service it concerns (absent for a whole-stack rollback)
    digest       sha256:<64 hex> of the image concerned;  image: the full reference
    previous     the image the stable Service served before (stage, switch)
    actor        who ran it (--actor, $GITHUB_ACTOR, git config, login)
    run          the CI run URL, when there is one
    approval     {"ref", "approver", "source"} for an approved promotion
    breakGlass   {"reason", "skipped": [gates]} when gates were skipped
    promotedFrom the source stack of a promotion
    revokes      the images whose verification this event takes away (rollback, reject)
    reviews      the history entry number a review acknowledges (review of a break-glass)
    reason       why (rollback, reject, review)
    window       {"seconds", "probes"} of the health check that verified a digest (verify)
    notification {"sent": bool, "error"} for events that notify

Updates without a record (a plain `pulumi up`, older releases) are still listed by `release audit`
as foreign updates; they never count as verification.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

MARK = "release/v1"
RECORD = re.compile(r"\s" + re.escape(MARK) + r" (?P<json>\{.*\})\s*$")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

OPERATOR_MARK = re.compile(r"\[by (?P<operator>[^\]]+)\]")
"""`[by <actor>]`, which every message carries so `release history` can say who ran an update."""

EVENTS = ("stage", "switch", "verify", "rollback", "reject", "review")


@dataclass(frozen=True)
class ReleaseRecord:
    event: str
    stack: str
    actor: str
    service: str = ""
    image: str = ""
    previous: str = ""
    run: str = ""
    approval: dict[str, str] = field(default_factory=dict)
    break_glass: dict[str, Any] = field(default_factory=dict)
    promoted_from: str = ""
    revokes: tuple[str, ...] = ()
    reviews: int | None = None
    reason: str = ""
    window: dict[str, Any] = field(default_factory=dict)
    notification: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        found = DIGEST.search(self.image)
        return found.group(0) if found else ""

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "event": self.event,
            "stack": self.stack,
            "actor": self.actor,
            "service": self.service,
            "image": self.image,
            "digest": self.digest,
            "previous": self.previous,
            "run": self.run,
            "approval": self.approval,
            "breakGlass": self.break_glass,
            "promotedFrom": self.promoted_from,
            "revokes": list(self.revokes),
            "reviews": self.reviews,
            "reason": self.reason,
            "window": self.window,
            "notification": self.notification,
        }
        return {key: value for key, value in document.items() if value not in ("", {}, [], None)}

    def message(self, summary: str) -> str:
        """The whole update message: the summary for humans, who did it, and this record."""
        return f"{summary} {operator_mark(self.actor)} {MARK} {json.dumps(self.to_json(), sort_keys=True)}"


def operator_mark(actor: str) -> str:
    return f"[by {actor}]"


def parse_record(message: str) -> ReleaseRecord | None:
    """The record at the end of an update message, or None (a foreign update, or a damaged record)."""
    found = RECORD.search(message)
    if found is None:
        return None
    try:
        data = json.loads(found.group("json"))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("event") not in EVENTS:
        return None
    reviews = data.get("reviews")
    return ReleaseRecord(
        event=str(data["event"]),
        stack=str(data.get("stack", "")),
        actor=str(data.get("actor", "")),
        service=str(data.get("service", "")),
        image=str(data.get("image", "")),
        previous=str(data.get("previous", "")),
        run=str(data.get("run", "")),
        approval=dict(data.get("approval") or {}),
        break_glass=dict(data.get("breakGlass") or {}),
        promoted_from=str(data.get("promotedFrom", "")),
        revokes=tuple(str(image) for image in data.get("revokes") or ()),
        reviews=int(reviews) if isinstance(reviews, int) else None,
        reason=str(data.get("reason", "")),
        window=dict(data.get("window") or {}),
        notification=dict(data.get("notification") or {}),
    )


def summary_of(message: str) -> str:
    """The human part of a message (without the record)."""
    found = RECORD.search(message)
    return message[: found.start()].strip() if found else message.strip()
