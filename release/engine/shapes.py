"""The JSON shapes the engine speaks, shared by the adapter and its test double: a history entry as
`pulumi stack history --json` prints it, and an engine event as the JSON event stream carries it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class UpdateResult(StrEnum):
    """An update's `result` in `pulumi stack history --json` (the engine may add others; they are
    kept as the text it gave)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    IN_PROGRESS = "in-progress"


def summary_to_history_json(summary: Any) -> dict[str, Any]:
    """An SDK `UpdateSummary` back in the shape of `pulumi stack history --json` (one parser for both)."""
    entry: dict[str, Any] = {
        "version": summary.version or 0,
        "kind": summary.kind,
        "startTime": _time_text(summary.start_time),
        "message": summary.message,
        "environment": dict(summary.environment or {}),
        "config": {
            key: {"secret": True} if value.secret else {"value": value.value, "secret": False}
            for key, value in (summary.config or {}).items()
        },
        "result": summary.result,
    }
    if summary.end_time is not None:
        entry["endTime"] = _time_text(summary.end_time)
    if summary.resource_changes is not None:
        entry["resourceChanges"] = dict(summary.resource_changes)
    return entry


def event_to_json(event: Any) -> dict[str, Any]:
    """An SDK `EngineEvent` back in the engine's JSON event shape (only what drift detection reads)."""
    pre = getattr(event, "resource_pre_event", None)
    if pre is None:
        summary = getattr(event, "summary_event", None)
        if summary is None:
            return {}
        return {"summaryEvent": {"resourceChanges": changes_of(summary.resource_changes)}}
    metadata = pre.metadata
    return {
        "resourcePreEvent": {
            "metadata": {
                "op": str(getattr(metadata.op, "value", metadata.op)),
                "urn": metadata.urn,
                "type": metadata.type,
                "diffs": list(metadata.diffs or []),
                "detailedDiff": {
                    path: {
                        "kind": str(getattr(diff.diff_kind, "value", diff.diff_kind)),
                        "inputDiff": diff.input_diff,
                    }
                    for path, diff in (metadata.detailed_diff or {}).items()
                },
            }
        }
    }


def changes_of(summary: Mapping[Any, int] | None) -> dict[str, int]:
    return {str(operation): int(count) for operation, count in (summary or {}).items()}


def _time_text(moment: datetime) -> str:
    return moment.strftime(TIME_FORMAT)
