"""Data safety, declared once in `Pulumi.yaml` (`dataSafety`) and the same in every stack: the
recovery targets a restore drill is measured against, the queries that prove a restored database is
usable, and how long manual snapshots are kept. The release tool reads it (snapshots before risky
migrations, `release drill`); the program's resources do not depend on it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from core.config.base import DNS_LABEL, ConfigModel, require_names

MAX_QUERY_CHARS = 4000


class VerificationExpect(StrEnum):
    """What a verification query's one row, one column must be."""

    POSITIVE = "positive"
    """A number above 0 (e.g. `SELECT count(*) FROM accounts`)."""
    NEWEST_WRITE = "newestWrite"
    """A timestamp with time zone: the newest write the restored data holds, for the RPO."""


class VerificationQuery(ConfigModel):
    """One query run against a restored database, in a read-only transaction, with a deadline."""

    name: str
    sql: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    expect: VerificationExpect

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        require_names([name], DNS_LABEL, "a query name is a lowercase DNS label, e.g. accounts-rows")
        return name

    @field_validator("sql")
    @classmethod
    def _one_statement(cls, sql: str) -> str:
        if ";" in sql.strip().rstrip(";"):
            raise ValueError("one statement per query (no ';' inside): each runs alone, read-only")
        return sql.strip().rstrip(";").strip()


class RecoveryTargets(ConfigModel):
    """The database's recovery objectives: a drill must restore and verify within `rto_minutes`,
    and lose at most `rpo_minutes` of writes."""

    rto_minutes: int = Field(default=30, ge=1, le=1440, strict=True)
    rpo_minutes: int = Field(default=15, ge=1, le=1440, strict=True)


class SnapshotRetention(ConfigModel):
    """Manual snapshots the release tool took: the newest `keep` are kept, older ones once they are
    older than `max_age_days`; never the newest one taken before a digest that is still live."""

    keep: int = Field(default=10, ge=1, le=100, strict=True)
    max_age_days: int = Field(default=35, ge=1, le=3650, strict=True)


class DataSafetySpec(ConfigModel):
    targets: RecoveryTargets = Field(default_factory=RecoveryTargets)
    verification: list[VerificationQuery] = Field(min_length=1)
    query_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    snapshot_timeout_minutes: int = Field(default=60, ge=1, le=720, strict=True)
    """How long a snapshot may take before the release stops (nothing changed yet)."""
    restore_timeout_minutes: int = Field(default=60, ge=1, le=720, strict=True)
    """How long a drill waits for its scratch instance to become available."""
    retention: SnapshotRetention = Field(default_factory=SnapshotRetention)

    @field_validator("verification")
    @classmethod
    def _named_once_with_a_newest_write(cls, queries: list[VerificationQuery]) -> list[VerificationQuery]:
        names = [query.name for query in queries]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"query names must be unique: {repeated}")
        if not any(query.expect is VerificationExpect.NEWEST_WRITE for query in queries):
            raise ValueError("one query must expect newestWrite: the RPO is measured from it")
        return queries
