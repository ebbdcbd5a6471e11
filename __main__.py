"""The platform's Pulumi program: the same code path for every stack; only config values differ.

Config is read and validated once, here, into one typed StackConfig; components receive plain typed
values and never read config themselves.
"""

from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.app_namespace import AppNamespace
from components.app_secrets import AppSecrets
from components.blue_green_service import BlueGreenService
from components.dashboards import ServiceDashboard
from components.database import Database
from components.database_alarms import DatabaseAlarms
from components.gateway import StackGateway
from components.network_policy import NetworkPolicies
from components.service_monitoring import ServiceMonitoring
from components.workload_identity import WorkloadIdentity
from core.config.rules import load_stack_config
from core.config.sources import raw_config_from_runtime
from core.dashboards import dashboard_spec
from core.gateway import GATEWAY_NAME, PREVIEW_TOKEN_SECRET

config = load_stack_config(
    raw_config_from_runtime(pulumi.get_stack(), Path(__file__).with_name("Pulumi.yaml"))
)
settings = config.settings

aws_provider = aws.Provider("aws", region=settings.aws_region)
tags = {"app": "platform", "namespace": settings.namespace}
database = Database(
    "database",
    identifier=settings.namespace,
    postgres=config.project.postgres,
    size=settings.database,
    tags=tags,
    opts=pulumi.ResourceOptions(provider=aws_provider),
)

max_connections_text = config.project.postgres.parameters.get("max_connections")
max_connections = (
    int(max_connections_text) if max_connections_text and max_connections_text.isdigit() else None
)
DatabaseAlarms(
    "database-alarms",
    instance_id=database.identifier,
    allocated_storage_gb=settings.database.allocated_storage_gb,
    max_connections=config.project.postgres.max_connections,
    topic_arn=settings.alerting.sns_topic_arn,
    tags=tags,
    opts=pulumi.ResourceOptions(provider=aws_provider),
)

namespace = AppNamespace("app", namespace=settings.namespace, kube_context=settings.kube_context)
on_cluster = pulumi.ResourceOptions(provider=namespace.provider)

network_policies = NetworkPolicies(
    "network",
    namespace=namespace.name,
    services=[service.spec for service in config.services],
    network=settings.network,
    database_port=config.project.postgres.port,
    opts=on_cluster,
)

app_secrets = AppSecrets(
    "app-secrets",
    namespace=namespace.name,
    required=config.project.secret_names,
    values=settings.app_secrets,
    opts=on_cluster,
)

database_settings: dict[str, pulumi.Input[str]] = {
    "DATABASE_HOST": database.address,
    **config.project.postgres.connection_settings(),
    "DATABASE_PASSWORD_SECRET_ARN": database.master_user_secret_arn,
}

identities = {
    service.name: WorkloadIdentity(
        service.name,
        namespace=settings.namespace,
        identity=settings.identity,
        database_secret_arn=database.master_user_secret_arn if service.spec.reads_database else None,
        kms_key_arn=settings.database.secret_kms_key_arn,
        tags=tags,
        opts=pulumi.ResourceOptions(providers=[aws_provider, namespace.provider], depends_on=[namespace]),
    )
    for service in config.services
}

gateway = StackGateway(
    GATEWAY_NAME,
    namespace=namespace.name,
    class_name=config.project.gateway.class_name,
    hosts={service.name: config.hostname(service.name, preview=False) for service in config.services},
    tls=settings.tls,
    opts=on_cluster,
)
preview_token = pulumi.Output.secret(settings.app_secrets[PREVIEW_TOKEN_SECRET].get_secret_value())

services = {
    service.name: BlueGreenService(
        service.name,
        namespace=namespace.name,
        service=service,
        stable_hostname=config.hostname(service.name, preview=False),
        gateway_name=GATEWAY_NAME,
        preview_token=preview_token,
        health_url=config.health_url(service.name, preview=False),
        health_check=settings.health_check,
        database_config=database_settings if service.spec.reads_database else {},
        secret_name=app_secrets.secret_name,
        identity=identities[service.name],
        aws_region=settings.aws_region,
        opts=on_cluster,
    )
    for service in config.services
}

monitoring = {
    service.name: ServiceMonitoring(
        service.name,
        namespace=namespace.name,
        service=service.spec,
        slos=config.project.slos,
        routing_labels=settings.alerting.routing_labels,
        opts=on_cluster,
    )
    for service in config.services
}

dashboards = {
    service.name: ServiceDashboard(
        service.name,
        namespace=namespace.name,
        spec=dashboard_spec(
            service.name,
            settings.namespace,
            config.project.slos,
            # the database's identifier is the namespace (Database above); only its readers show it
            database_instance=settings.namespace if service.spec.reads_database else None,
            max_connections=config.project.postgres.max_connections,
        ),
        settings=settings.dashboards,
        opts=on_cluster,
    )
    for service in config.services
}

pulumi.export(
    "services",
    {
        name: {
            "stableService": service.stable_service_name,
            "previewService": service.preview_service_name,
            "activeColor": service.active_color,
            "images": service.images,
            "configFingerprints": service.config_fingerprints,
            "stableHostname": service.stable_hostname,
            "previewHostname": service.preview_hostname,
        }
        for name, service in services.items()
    },
)
pulumi.export("namespace", namespace.name)
pulumi.export("databaseEndpoint", database.endpoint)
