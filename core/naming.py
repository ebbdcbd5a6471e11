"""Names the program gives its resources, as plain strings: type tokens and URNs.

The release tool targets resources by URN (a rollback's `up --target`), and tests check these against
what the program registers under the mock runtime. Strings only: no Pulumi SDK import here, so the
tool can build a URN without loading pulumi_kubernetes.
"""

from __future__ import annotations

COMPONENT_TYPE_PREFIX = "platform:components"

APP_NAMESPACE_TYPE = f"{COMPONENT_TYPE_PREFIX}:AppNamespace"
APP_SECRETS_TYPE = f"{COMPONENT_TYPE_PREFIX}:AppSecrets"
BLUE_GREEN_SERVICE_TYPE = f"{COMPONENT_TYPE_PREFIX}:BlueGreenService"
DATABASE_TYPE = f"{COMPONENT_TYPE_PREFIX}:Database"
MIGRATION_JOB_TYPE = f"{COMPONENT_TYPE_PREFIX}:MigrationJob"
STACK_GATEWAY_TYPE = f"{COMPONENT_TYPE_PREFIX}:StackGateway"
NETWORK_POLICIES_TYPE = f"{COMPONENT_TYPE_PREFIX}:NetworkPolicies"
SERVICE_MONITORING_TYPE = f"{COMPONENT_TYPE_PREFIX}:ServiceMonitoring"
DATABASE_ALARMS_TYPE = f"{COMPONENT_TYPE_PREFIX}:DatabaseAlarms"
WORKLOAD_IDENTITY_TYPE = f"{COMPONENT_TYPE_PREFIX}:WorkloadIdentity"
DASHBOARD_TYPE = f"{COMPONENT_TYPE_PREFIX}:ServiceDashboard"

KUBERNETES_SERVICE_TYPE = "kubernetes:core/v1:Service"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
HTTPROUTE_TYPE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
AUTOSCALER_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def preview_service_name(service: str) -> str:
    """The Pulumi (and Kubernetes) name of a service's preview Service."""
    return f"{service}-preview"


def service_urns(stack: str, project: str, service: str) -> tuple[str, str]:
    """The URNs of a service's stable and preview Services: what a blue-green rollback targets.

    Pulumi derives a URN from the stack, project, the parent's type chain and the resource name.
    """
    prefix = f"urn:pulumi:{stack}::{project}::{BLUE_GREEN_SERVICE_TYPE}${KUBERNETES_SERVICE_TYPE}::"
    return f"{prefix}{service}", f"{prefix}{preview_service_name(service)}"


def color_urns(stack: str, project: str, service: str, color: str) -> tuple[str, str]:
    """The URNs of one color's Deployment and autoscaler: what resizing that color targets."""
    prefix = f"urn:pulumi:{stack}::{project}::{BLUE_GREEN_SERVICE_TYPE}$"
    return (
        f"{prefix}{DEPLOYMENT_TYPE}::{service}-{color}",
        f"{prefix}{AUTOSCALER_TYPE}::{service}-{color}",
    )


def canary_urn(stack: str, project: str, service: str) -> str:
    """The URN of a service's HTTPRoute, whose backend weights a canary step sets (and an abort or a
    rollback puts back to 0): what a canary step targets."""
    return f"urn:pulumi:{stack}::{project}::{BLUE_GREEN_SERVICE_TYPE}${HTTPROUTE_TYPE}::{service}"


CONFIG_FINGERPRINT_ANNOTATION = "platform.example.test/config-fingerprint"
"""On each color's pod template: the fingerprint of the config it reads (`core.config.stack.PodConfig`)."""
