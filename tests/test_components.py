"""Each component's contract, asserted on the resources the program registers under the mock runtime."""

from __future__ import annotations

from typing import Any

import pytest

from core.config.base import SECRET_MARKER
from release.offline.mock_runtime import ProgramRun, RegisteredResource
from tests.conftest import STACKS, TEST_SECRETS, baseline, json_text

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
JOB = "kubernetes:batch/v1:Job"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
RDS = "aws:rds/instance:Instance"
COLOR_LABEL = "platform.example.test/color"
CONFIG_FINGERPRINT = "platform.example.test/config-fingerprint"


def container(resource: RegisteredResource) -> dict[str, Any]:
    containers: list[dict[str, Any]] = resource.inputs["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def pod_spec(resource: RegisteredResource) -> dict[str, Any]:
    spec: dict[str, Any] = resource.inputs["spec"]["template"]["spec"]
    return spec


def parent_of(run: ProgramRun, resource: RegisteredResource) -> RegisteredResource:
    return run.by_urn()[resource.parent]


def depends_on(run: ProgramRun, resource: RegisteredResource) -> set[str]:
    urns = run.by_urn()
    return {urns[urn].key for urn in resource.dependencies}


# ---------------------------------------------------------------------------------------- structure


def test_every_component_has_a_platform_components_type_token() -> None:
    run = baseline("staging")
    components = [resource for resource in run.resources if not resource.custom]
    assert {resource.type for resource in components} == {
        "platform:components:AppNamespace",
        "platform:components:AppSecrets",
        "platform:components:BlueGreenService",
        "platform:components:Database",
        "platform:components:DatabaseAlarms",
        "platform:components:MigrationJob",
        "platform:components:NetworkPolicies",
        "platform:components:ServiceDashboard",
        "platform:components:ServiceMonitoring",
        "platform:components:StackGateway",
        "platform:components:WorkloadIdentity",
    }


def test_every_cloud_resource_is_a_child_of_a_component() -> None:
    run = baseline("staging")
    orphans = [
        resource.key
        for resource in run.resources
        if resource.custom and resource.parent not in run.by_urn() and resource.type != "pulumi:providers:aws"
    ]
    assert orphans == []


def test_every_kubernetes_resource_uses_the_explicit_provider_with_the_stacks_kube_context() -> None:
    run = baseline("staging")
    provider = run.named("pulumi:providers:kubernetes", "app-kubernetes")
    assert provider.inputs["context"] == "staging"
    kubernetes = [resource for resource in run.resources if resource.type.startswith("kubernetes:")]
    assert kubernetes and {resource.provider for resource in kubernetes} == {"app-kubernetes"}


def test_the_program_creates_its_namespace_and_puts_everything_in_it() -> None:
    run = baseline("production")
    assert (
        run.named("kubernetes:core/v1:Namespace", "app").inputs["metadata"]["name"] == "platform-production"
    )
    namespaced = [
        resource
        for resource in run.resources
        if resource.type.startswith("kubernetes:") and resource.type != "kubernetes:core/v1:Namespace"
    ]
    assert {resource.inputs["metadata"]["namespace"] for resource in namespaced} == {"platform-production"}


# -------------------------------------------------------------------------------- BlueGreenService


@pytest.mark.parametrize("service", ["api", "web"])
def test_each_color_has_its_own_deployment_pinned_to_its_own_image(service: str) -> None:
    run = baseline("staging")
    for color, digest_start in (
        ("blue", "sha256:1d8a" if service == "api" else "sha256:6e81"),
        ("green", "sha256:5cb9" if service == "api" else "sha256:de4a"),
    ):
        deployment = run.named(DEPLOYMENT, f"{service}-{color}")
        assert deployment.inputs["metadata"]["name"] == f"{service}-{color}"
        assert digest_start in container(deployment)["image"]
        assert deployment.inputs["spec"]["selector"]["matchLabels"][COLOR_LABEL] == color
        assert deployment.inputs["spec"]["replicas"] == 2


def test_the_stable_service_selects_the_active_color_and_the_preview_the_other() -> None:
    run = baseline("staging")  # api's active color is green in staging
    stable = run.named(SERVICE, "api")
    preview = run.named(SERVICE, "api-preview")
    assert stable.inputs["metadata"]["name"] == "api"
    assert preview.inputs["metadata"]["name"] == "api-preview"
    assert stable.inputs["spec"]["selector"][COLOR_LABEL] == "green"
    assert preview.inputs["spec"]["selector"][COLOR_LABEL] == "blue"


def test_the_idle_color_keeps_running() -> None:
    run = baseline("production")
    assert run.named(DEPLOYMENT, "api-green").inputs["spec"]["replicas"] == 4
    assert run.named(DEPLOYMENT, "api-blue").inputs["spec"]["replicas"] == 4


def test_services_wait_for_both_colors_so_the_edges_do_not_depend_on_the_active_color() -> None:
    run = baseline("dev")
    for name in ("api", "api-preview"):
        assert {f"{DEPLOYMENT}::api-blue", f"{DEPLOYMENT}::api-green"} <= depends_on(
            run, run.named(SERVICE, name)
        )


def test_pods_are_hardened_with_probes_and_resources() -> None:
    run = baseline("production")
    deployment = run.named(DEPLOYMENT, "api-blue")
    pod = deployment.inputs["spec"]["template"]["spec"]
    app = container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert app["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert app["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": "http"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/healthz/live", "port": "http"}
    assert app["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


def test_each_color_has_a_pod_disruption_budget() -> None:
    run = baseline("production")
    for color in ("blue", "green"):
        budget = run.named(PDB, f"web-{color}")
        assert budget.inputs["spec"]["selector"]["matchLabels"][COLOR_LABEL] == color
        assert budget.inputs["spec"]["maxUnavailable"] == 1


def test_a_color_reads_its_own_config_object_and_the_services_database_settings() -> None:
    run = baseline("staging")
    deployment = run.named(DEPLOYMENT, "api-blue")
    app = container(deployment)
    fingerprint = deployment.inputs["spec"]["template"]["metadata"]["annotations"][CONFIG_FINGERPRINT]
    assert [source["configMapRef"]["name"] for source in app["envFrom"]] == [
        f"api-blue-config-{fingerprint}",
        "api-database",
    ]
    assert {f"{CONFIG_MAP}::api-config-blue", f"{CONFIG_MAP}::api-database", f"{SECRET}::app-secrets"} <= (
        depends_on(run, deployment)
    )


def test_a_colors_config_object_is_immutable_and_holds_its_env_and_flags_over_the_defaults() -> None:
    config = baseline("staging").named(CONFIG_MAP, "api-config-blue")
    assert config.inputs["immutable"] is True
    assert config.inputs["data"] == {
        "FEATURE_NEW_CHECKOUT": "true",  # staging's own value for both colors
        "FEATURE_SEARCH_V2": "false",  # the default in Pulumi.yaml
        "HTTP_PORT": "8080",
        "LOG_FORMAT": "json",
    }


def test_secrets_are_files_named_by_env_vars_never_env_values() -> None:
    deployment = baseline("staging").named(DEPLOYMENT, "api-blue")
    app = container(deployment)
    assert not [env for env in app["env"] if "valueFrom" in env]
    files = {
        env["name"]: env["value"]
        for env in app["env"]
        if env["value"].startswith("/var/run/secrets/platform/app")
    }
    assert files == {
        "SESSION_SIGNING_KEY_FILE": "/var/run/secrets/platform/app/SESSION_SIGNING_KEY",
        "PAYMENT_PROVIDER_API_KEY_FILE": "/var/run/secrets/platform/app/PAYMENT_PROVIDER_API_KEY",
    }
    volume = next(volume for volume in pod_spec(deployment)["volumes"] if volume["name"] == "app-secrets")
    assert volume["secret"]["secretName"] == "app-secrets"
    assert [item["key"] for item in volume["secret"]["items"]] == [
        "SESSION_SIGNING_KEY",
        "PAYMENT_PROVIDER_API_KEY",
    ]
    assert volume["secret"]["defaultMode"] == 0o440
    mount = next(mount for mount in app["volumeMounts"] if mount["name"] == "app-secrets")
    assert mount == {"name": "app-secrets", "mountPath": "/var/run/secrets/platform/app", "readOnly": True}


@pytest.mark.parametrize(
    ("stack", "deployment", "policy"),
    [
        ("dev", "api-green", "Always"),
        ("dev", "api-blue", "IfNotPresent"),
        ("production", "web-blue", "IfNotPresent"),
    ],
)
def test_a_tag_is_pulled_every_time_and_a_digest_only_when_missing(
    stack: str, deployment: str, policy: str
) -> None:
    assert container(baseline(stack).named(DEPLOYMENT, deployment))["imagePullPolicy"] == policy


def test_a_route_per_service_sends_its_stable_host_to_the_live_service_and_nothing_to_the_idle_one() -> None:
    run = baseline("staging")
    spec = run.named(ROUTE, "api").inputs["spec"]
    assert spec["hostnames"] == ["api.staging.platform.example.test"]
    assert spec["parentRefs"] == [{"name": "platform", "sectionName": "https-api"}]
    assert spec["rules"][0]["backendRefs"] == [
        {"name": "api", "port": 80, "weight": 100},
        {"name": "api-preview", "port": 80, "weight": 0},
    ]
    # the preview route, on the same host, holds the preview token: the engine keeps its spec secret
    assert run.named(ROUTE, "api-preview").secret_paths == frozenset({"spec"})
    (gateway,) = run.of_type(GATEWAY)
    assert gateway.inputs["spec"]["gatewayClassName"] == "platform-gateway"


def test_the_database_config_map_carries_the_connection_settings_but_no_password() -> None:
    run = baseline("staging")
    data = run.named(CONFIG_MAP, "api-database").inputs["data"]
    assert data["DATABASE_HOST"] == "platform-staging.mock.rds.invalid"
    assert data["DATABASE_PORT"] == "5432"
    assert data["DATABASE_PASSWORD_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
    assert not any("PASSWORD" in key and "ARN" not in key for key in data)


# ------------------------------------------------------------------------------------ MigrationJob


def test_a_service_with_a_migration_gets_one_job_per_color_running_that_colors_image() -> None:
    run = baseline("staging")
    for color in ("blue", "green"):
        job = run.named(JOB, f"api-migrate-{color}")
        image = container(run.named(DEPLOYMENT, f"api-{color}"))["image"]
        assert container(job)["image"] == image
        assert container(job)["command"] == ["python", "-m", "app.migrate", "--to", "head"]
        assert parent_of(run, job).type == "platform:components:MigrationJob"


def test_a_service_without_a_migration_gets_no_job() -> None:
    assert not [job for job in baseline("staging").of_type(JOB) if job.name.startswith("web")]


def test_a_colors_deployment_depends_on_that_colors_migration() -> None:
    run = baseline("staging")
    for color in ("blue", "green"):
        other = "green" if color == "blue" else "blue"
        edges = depends_on(run, run.named(DEPLOYMENT, f"api-{color}"))
        # The SDK expands a dependency on the MigrationJob component to the Job inside it.
        assert f"{JOB}::api-migrate-{color}" in edges
        assert f"{JOB}::api-migrate-{other}" not in edges


def test_the_job_has_a_stable_pulumi_name_and_a_kubernetes_name_from_the_image_digest_and_config() -> None:
    for stack in STACKS:
        run = baseline(stack)
        job = run.named(JOB, "api-migrate-blue")
        digest = container(job)["image"].split("@sha256:")[1]
        template = run.named(DEPLOYMENT, "api-blue").inputs["spec"]["template"]
        fingerprint = template["metadata"]["annotations"][CONFIG_FINGERPRINT]
        assert job.inputs["metadata"]["name"] == f"api-migrate-blue-{digest[:12]}-{fingerprint}"
        assert container(job)["envFrom"] == container(run.named(DEPLOYMENT, "api-blue"))["envFrom"]


def test_the_job_has_bounded_retries_a_deadline_and_no_ttl() -> None:
    job = baseline("production").named(JOB, "api-migrate-green")
    spec = job.inputs["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 600
    assert "ttlSecondsAfterFinished" not in spec
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert job.inputs["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == "660"
    assert container(job)["securityContext"]["readOnlyRootFilesystem"] is True


# -------------------------------------------------------------------------------------- AppSecrets


def test_app_secrets_become_one_kubernetes_secret_whose_values_stay_secret() -> None:
    run = baseline("staging")
    secret = run.named(SECRET, "app-secrets")
    assert secret.inputs["metadata"]["name"] == "app-secrets"
    assert "stringData" in secret.secret_paths
    assert secret.inputs["stringData"] == SECRET_MARKER


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_appears_in_any_resource_input_or_stack_output(stack: str) -> None:
    run = baseline(stack)
    everything = json_text([resource.inputs for resource in run.resources]) + json_text(run.outputs)
    for value in TEST_SECRETS.values():
        assert value not in everything


# ---------------------------------------------------------------------------------------- Database


def test_the_database_is_encrypted_postgres_with_an_aws_managed_password_and_backups() -> None:
    database = baseline("dev").named(RDS, "database")
    inputs = database.inputs
    assert inputs["engine"] == "postgres"
    assert inputs["engineVersion"] == "16.4"
    assert inputs["autoMinorVersionUpgrade"] is False
    assert inputs["storageEncrypted"] is True
    assert inputs["manageMasterUserPassword"] is True
    assert "password" not in inputs
    assert inputs["backupRetentionPeriod"] == 1  # dev's knob (tests/test_database.py)
    assert inputs["publiclyAccessible"] is False
    assert inputs["skipFinalSnapshot"] is False
    assert inputs["finalSnapshotIdentifier"] == "platform-dev-final"
    assert database.provider == "aws"


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_runs_the_engine_version_declared_once_in_pulumi_yaml(stack: str) -> None:
    assert baseline(stack).named(RDS, "database").inputs["engineVersion"] == "16.4"


def test_production_has_deletion_protection_and_pulumi_protect() -> None:
    database = baseline("production").named(RDS, "database")
    assert database.inputs["deletionProtection"] is True
    assert database.protect is True
    assert database.inputs["multiAz"] is True


# ----------------------------------------------------------------------------------------- Outputs


def test_stack_outputs_name_each_services_services_color_and_images_and_the_database_endpoint() -> None:
    outputs = baseline("staging").outputs
    assert outputs["services"]["api"] == {
        "stableService": "api",
        "previewService": "api-preview",
        "activeColor": "green",
        "images": {
            "blue": "registry.example.test/platform/api@sha256:"
            "1d8aff1add76b5af6dbeea9df7c4d9a7843261578c6450c032a98f162fb32354",
            "green": "registry.example.test/platform/api@sha256:"
            "5cb9004f96e5140e3acbd1eaffd8522a77e2cf40805ae4d8090bfe40bf81786d",
        },
        "configFingerprints": {
            color: container(baseline("staging").named(DEPLOYMENT, f"api-{color}"))["envFrom"][0][
                "configMapRef"
            ]["name"].rsplit("-", 1)[1]
            for color in ("blue", "green")
        },
        "stableHostname": "api.staging.platform.example.test",
        "previewHostname": "api.staging.platform.example.test",  # the same host, header-matched
    }
    assert outputs["databaseEndpoint"] == "platform-staging.mock.rds.invalid:5432"
    assert outputs["namespace"] == "platform-staging"
