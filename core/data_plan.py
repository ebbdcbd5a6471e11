"""What the data program (components/data_program.py) declares for one stack's database: the manual
snapshots the release tool keeps, and at most one scratch instance a restore drill builds. The
release tool decides the plan; the program only turns it into resources. It runs as its own Pulumi
project (`platform-data`, one stack per main stack), so the main program's resources and parity stay
as they are.

Names are derived here, once, so a leftover from a killed drill is found by name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

DATA_PROJECT = "platform-data"
"""The Pulumi project of the data program (its stacks are named like the main stacks)."""

SNAPSHOTS_TYPE = "platform:data:DatabaseSnapshots"
SCRATCH_DATABASE_TYPE = "platform:data:ScratchDatabase"
RDS_SNAPSHOT_TYPE = "aws:rds/snapshot:Snapshot"
RDS_INSTANCE_TYPE = "aws:rds/instance:Instance"

SNAPSHOT_ID = re.compile(r"[a-z][a-z0-9-]{0,254}")
"""An RDS DB snapshot identifier: letters, digits and single hyphens, starting with a letter."""

# Outputs of the data program (stack outputs of `platform-data/<stack>`).
SNAPSHOTS_OUTPUT = "snapshots"
"""[{"id", "sourceInstance", "createdAt", "service", "image", "releaseId"}], oldest first."""
SCRATCH_OUTPUT = "scratch"
"""{"identifier", "address", "port", "databaseName", "username", "restoredFrom"} or absent."""
SCRATCH_PASSWORD_OUTPUT = "scratchPassword"
"""The scratch instance's master password (a secret output; never printed)."""


@dataclass(frozen=True)
class SnapshotSpec:
    """One manual snapshot of the stack's database, taken before a risky change."""

    snapshot_id: str
    source_instance: str
    service: str
    image: str
    release_id: str
    created_at: datetime

    def tags(self) -> dict[str, str]:
        return {
            "app": "platform",
            "taken-by": "release",
            "service": self.service,
            "release-id": self.release_id,
            "created-at": utc_text(self.created_at),
        }


@dataclass(frozen=True)
class ScratchSpec:
    """A scratch instance restored from `snapshot_id` (or the source at `restore_time`), mirroring
    the source: engine version, parameter group, subnet group, security groups, port, database
    name. No deletion protection, no final snapshot, never public."""

    identifier: str
    source_instance: str
    engine_version: str
    parameter_group_name: str
    subnet_group_name: str
    security_group_ids: tuple[str, ...]
    instance_class: str
    port: int
    database_name: str
    snapshot_id: str | None = None
    restore_time: datetime | None = None

    def __post_init__(self) -> None:
        if (self.snapshot_id is None) == (self.restore_time is None):
            raise ValueError("a scratch instance restores either a snapshot or a point in time")


@dataclass(frozen=True)
class DataPlan:
    """What one data stack of a main stack holds. Each main stack has two: `<stack>` keeps the
    snapshots, `<stack>-drill` a drill's scratch instance (`drill=True`), so a snapshot never
    touches a drill's instance and a drill's cleanup never touches a snapshot."""

    stack: str
    snapshots: tuple[SnapshotSpec, ...] = ()
    scratch: ScratchSpec | None = None
    tags: dict[str, str] = field(default_factory=dict)
    drill: bool = False

    @property
    def data_stack(self) -> str:
        return data_stack_name(self.stack, self.drill)


def data_stack_name(stack: str, drill: bool) -> str:
    """The data stack (in project DATA_PROJECT) that holds `stack`'s snapshots, or its drill."""
    return f"{stack}-drill" if drill else stack


def utc_text(at: datetime) -> str:
    """`at` as RFC 3339 in UTC to the second (`2025-01-31T09:30:00Z`): what RDS takes as a restore time
    and what the tags and outputs show. A naive datetime is refused: its zone would be a guess."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a time without a time zone is ambiguous: {at.isoformat()}")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rds_name(stack: str) -> str:
    """`stack` as a piece of an RDS identifier (lowercase letters, digits, single hyphens): a stack
    name Pulumi allows but RDS does not (`eu_prod`, `Prod`, `team.prod`) is mapped, with 6 hex of a
    hash of the original so two stacks never map to the same name."""
    mapped = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", stack.lower())).strip("-")
    if mapped == stack:
        return stack
    digest = hashlib.sha256(stack.encode()).hexdigest()[:6]
    return f"{mapped[:40]}-{digest}" if mapped else digest


def snapshot_id(stack: str, service: str, image_fingerprint: str, at: datetime) -> str:
    """`release-<stack>-<service>-<12 hex of the digest>-<UTC yyyymmddhhmmss>`: the stack through
    rds_name (Pulumi allows names RDS does not); a service name that is no valid piece (the config
    refuses those) or a naive `at` is a ValueError."""
    stamp = re.sub(r"\D", "", utc_text(at))
    identifier = f"release-{rds_name(stack)}-{service}-{image_fingerprint}-{stamp}"
    if not SNAPSHOT_ID.fullmatch(identifier) or "--" in identifier:
        raise ValueError(f"not a valid RDS snapshot identifier: {identifier!r}")
    return identifier


def scratch_identifier(stack: str) -> str:
    """The one scratch instance a drill of `stack` may build: a fixed name, so a leftover of a
    killed drill is found (and removed) by the next one; at most 63 characters, as RDS allows."""
    name = f"drill-{rds_name(stack)}"
    if len(name) > 63:
        name = f"{name[:56]}-{hashlib.sha256(stack.encode()).hexdigest()[:6]}"
    return name
