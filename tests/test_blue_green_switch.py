"""Switching colors and shipping a digest change exactly what they should, whatever the stack size."""

from __future__ import annotations

from typing import Any

from release.offline.mock_runtime import ProgramRun
from release.offline.parity import flatten
from tests.conftest import baseline, releases, run_program

NEW_DIGEST = "registry.example.test/platform/api@sha256:" + "c" * 64


def changed(before: ProgramRun, after: ProgramRun) -> dict[str, set[str]]:
    """resource key -> the input paths whose values differ between two runs of one stack."""
    result: dict[str, set[str]] = {}
    after_by_key = after.by_key()
    assert set(before.by_key()) == set(after_by_key), "the set of resources changed"
    for key, resource in before.by_key().items():
        old, new = flatten(resource.inputs), flatten(after_by_key[key].inputs)
        paths = {path for path in old.keys() | new.keys() if old.get(path) != new.get(path)}
        if paths or resource.protect != after_by_key[key].protect:
            result[key] = paths
    return result


def test_flipping_the_active_color_changes_exactly_the_two_service_selectors() -> None:
    def flip(values: dict[str, Any]) -> None:
        releases(values)["api"]["activeColor"] = "blue"  # green in staging

    assert changed(baseline("staging"), run_program("staging", edit=flip)) == {
        "kubernetes:core/v1:Service::api": {"spec.selector.platform.example.test/color"},
        "kubernetes:core/v1:Service::api-preview": {"spec.selector.platform.example.test/color"},
    }


def test_switching_back_is_the_same_small_change_in_reverse() -> None:
    def flip(values: dict[str, Any]) -> None:
        releases(values)["api"]["activeColor"] = "blue"

    switched = run_program("staging", edit=flip)
    assert changed(switched, baseline("staging")) == {
        "kubernetes:core/v1:Service::api": {"spec.selector.platform.example.test/color"},
        "kubernetes:core/v1:Service::api-preview": {"spec.selector.platform.example.test/color"},
    }
    stable = baseline("staging").named("kubernetes:core/v1:Service", "api")
    assert stable.inputs["spec"]["selector"]["platform.example.test/color"] == "green"


def test_a_new_digest_on_the_idle_color_changes_only_that_colors_deployment_and_job() -> None:
    def ship(values: dict[str, Any]) -> None:
        releases(values)["api"]["images"]["blue"] = NEW_DIGEST  # blue is idle in staging

    differences = changed(baseline("staging"), run_program("staging", edit=ship))
    assert set(differences) == {
        "kubernetes:apps/v1:Deployment::api-blue",
        "kubernetes:batch/v1:Job::api-migrate-blue",
    }
    assert differences["kubernetes:apps/v1:Deployment::api-blue"] == {
        "spec.template.spec.containers[0].image",
        "spec.template.spec.containers[0].env[1].value",  # APP_IMAGE, which health checks read back
    }
    # A new Kubernetes name makes Pulumi replace the Job, so the migration runs again for the new digest.
    assert "metadata.name" in differences["kubernetes:batch/v1:Job::api-migrate-blue"]


def test_scaling_without_a_new_digest_never_reruns_a_migration() -> None:
    def scale(values: dict[str, Any]) -> None:
        releases(values)["api"].update(replicas=5, maxReplicas=10)

    assert changed(baseline("staging"), run_program("staging", edit=scale)) == {
        "kubernetes:apps/v1:Deployment::api-blue": {"spec.replicas"},
        "kubernetes:apps/v1:Deployment::api-green": {"spec.replicas"},
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler::api-blue": {
            "spec.minReplicas",
            "spec.maxReplicas",
        },
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler::api-green": {
            "spec.minReplicas",
            "spec.maxReplicas",
        },
    }
