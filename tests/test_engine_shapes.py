"""What the adapter hands the engine and reads back, checked on the SDK's own types (no CLI needed)."""

from __future__ import annotations

import json
from datetime import datetime

from pulumi.automation import UpdateSummary

from core.config.base import SECRET_MARKER
from core.config.sources import ConfigEntry
from release.engine.shapes import summary_to_history_json
from release.history.entries import RELEASES_KEY, parse_history
from tests.history_data import STAGING_RULES

RELEASES = {
    "api": {"replicas": 2, "activeColor": "blue", "images": {"blue": "r@sha256:b", "green": "r@sha256:g"}}
}


def test_an_object_is_written_with_its_object_value_as_set_all_json_expects() -> None:
    assert ConfigEntry(RELEASES).to_engine_json() == {
        "value": json.dumps(RELEASES),
        "objectValue": RELEASES,
        "secret": False,
    }
    assert ConfigEntry("platform-staging").to_engine_json() == {"value": "platform-staging", "secret": False}


def test_an_sdk_update_summary_parses_like_the_clis_history_json() -> None:
    summary = UpdateSummary(
        kind="update",
        start_time=datetime(2026, 11, 20, 10, 5),
        message="release promote api: active green -> blue [by alice]",
        environment={"exec.kind": "auto.local"},
        config={
            RELEASES_KEY: {"value": json.dumps(RELEASES), "secret": False},
            "platform:appSecrets": {"secret": True},
        },
        result="succeeded",
        end_time=datetime(2026, 11, 20, 10, 6),
        version=0,
        resource_changes={"update": 2, "same": 24},  # type: ignore[dict-item]
    )
    (entry,) = parse_history([summary_to_history_json(summary)], STAGING_RULES)
    assert entry.config[RELEASES_KEY].value == RELEASES  # the SDK drops objectValue; JSON text is parsed
    assert entry.config["platform:appSecrets"] == ConfigEntry(SECRET_MARKER, secret=True)
    assert (entry.number, entry.version, entry.actor) == (1, 0, "-")  # "[by alice]" is only text
    assert entry.resource_changes == {"update": 2, "same": 24}
    assert entry.start_time == "2026-11-20T10:05:00.000000Z"


def test_an_sdk_engine_event_converts_back_to_the_event_stream_shape_drift_reads() -> None:
    from pulumi.automation.events import EngineEvent

    from release.engine.shapes import event_to_json
    from release.flows.drift import parse_drift

    raw = {
        "sequence": 4,
        "timestamp": 1795000000,
        "resourcePreEvent": {
            "metadata": {
                "op": "update",
                "urn": "urn:pulumi:production::platform::kubernetes:apps/v1:Deployment::api-blue",
                "type": "kubernetes:apps/v1:Deployment",
                "provider": "",
                "diffs": ["spec"],
                "detailedDiff": {"spec.replicas": {"diffKind": "update", "inputDiff": False}},
            }
        },
    }
    converted = event_to_json(EngineEvent.from_json(raw))
    (drifted,) = parse_drift("production", [converted]).drifted
    assert (drifted.op, drifted.properties) == ("update", ("spec", "spec.replicas"))
