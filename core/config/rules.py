"""Every rule a stack's config must follow, checked at once: `load_stack_config` validates a RawConfig
into a StackConfig or raises one ConfigError naming every problem (stack, key, value, fix).

The rules that are stricter for some stacks come from the `stackPolicies` table in `Pulumi.yaml`:
data, not `if stack == ...` in code.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from core.config.base import PROJECT_NAME, SECRET_MARKER, SECRETS_KEY, Color, ConfigModel, full_key
from core.config.project import ProjectSettings, ServiceSpec, StackPolicy
from core.config.stack import (
    PROJECT_KEYS,
    STACK_KNOBS,
    ColorConfig,
    RawConfig,
    ServiceRelease,
    StackConfig,
    StackSettings,
    StrategyType,
    TlsMode,
    misplaced_project_key,
)
from core.errors import ConfigError, ConfigProblem
from core.images import digest_of, is_image

# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def load_stack_config(raw: RawConfig, enforce_policy: bool = True) -> StackConfig:
    """Validate `raw` into a StackConfig, or raise one ConfigError that lists every problem.

    `enforce_policy=False` skips only the per-stack policy rules (digest pinning, replica floor,
    deletion protection); the parity check uses it to evaluate a stack with another stack's knobs.
    """
    problems: list[ConfigProblem] = []
    stack = raw.stack
    problems += _namespace_problems(raw)
    problems += _override_problems(raw)

    project_input = {key: raw.project_values.get(key) for key in PROJECT_KEYS if key in raw.project_values}
    project = _validate(ProjectSettings, project_input, stack, "Pulumi.yaml config", problems)

    stack_input = {key: raw.values[full_key(key)] for key in STACK_KNOBS if full_key(key) in raw.values}
    problems += _misplaced_problems(raw, stack_input)
    if full_key(SECRETS_KEY) in raw.values and full_key(SECRETS_KEY) not in raw.secret_keys:
        problems.append(
            ConfigProblem(
                stack,
                full_key(SECRETS_KEY),
                "(plain text, value not shown)",
                "application secrets are stored in plain text",
                f"remove the key and set each value with "
                f"`pulumi config set --secret --path '{SECRETS_KEY}.<NAME>' -s {stack}`",
            )
        )
    settings = _validate(StackSettings, stack_input, stack, f"Pulumi.{stack}.yaml", problems)

    policy: StackPolicy | None = None
    if project is not None:
        policy = project.stack_policies.get(stack)
        if policy is None:
            problems.append(
                ConfigProblem(
                    stack,
                    full_key("stackPolicies"),
                    sorted(project.stack_policies),
                    f"no policy is declared for stack '{stack}'",
                    f"add a '{stack}:' entry under stackPolicies in Pulumi.yaml",
                )
            )
    if settings is not None:
        problems += _tls_problems(stack, settings)
    if project is not None and settings is not None:
        problems += _cross_problems(stack, project, settings)
        problems += _database_problems(stack, settings)
        if policy is not None and enforce_policy:
            problems += _policy_problems(stack, project, settings, policy)

    if problems or project is None or settings is None or policy is None:
        raise ConfigError(stack, problems)
    return StackConfig(stack=stack, project=project, settings=settings, policy=policy)


def _namespace_problems(raw: RawConfig) -> list[ConfigProblem]:
    problems = []
    known = set(STACK_KNOBS) | set(PROJECT_KEYS)
    for key in sorted(raw.values):
        namespace, _, short = key.partition(":")
        if namespace != PROJECT_NAME:
            problems.append(
                ConfigProblem(
                    raw.stack,
                    key,
                    _shown(raw, key),
                    f"the program reads only '{PROJECT_NAME}:' keys; this one would be ignored "
                    "(providers are configured explicitly from platform: keys)",
                    f"remove it (`pulumi config rm {key} -s {raw.stack}`) or use the matching "
                    f"'{PROJECT_NAME}:' knob: {', '.join(STACK_KNOBS)}",
                    parity=True,
                )
            )
        elif short not in known:
            problems.append(
                ConfigProblem(
                    raw.stack,
                    key,
                    _shown(raw, key),
                    "unknown key (a typo would otherwise silently fall back to a default)",
                    f"remove it or use one of the per-stack knobs: {', '.join(STACK_KNOBS)}",
                    parity=True,
                )
            )
    return problems


def _override_problems(raw: RawConfig) -> list[ConfigProblem]:
    problems = []
    for key in PROJECT_KEYS:
        merged = raw.values.get(full_key(key), raw.project_values.get(key))
        if key in raw.overridden or merged != raw.project_values.get(key):
            problems.append(
                _project_level_problem(
                    raw.stack, key, _shown(raw, full_key(key)), key, raw.project_values.get(key)
                )
            )
    return problems


def _misplaced_problems(raw: RawConfig, stack_input: dict[str, Any]) -> list[ConfigProblem]:
    """Every project-level key set under a per-stack knob (`database.parameters`), reported as a
    project-level value set in the stack and taken out of `stack_input` (so it is not reported a
    second time as an unknown key)."""
    problems = []
    for knob, value in list(stack_input.items()):
        if not isinstance(value, dict):
            continue
        misplaced = {key: twin for key in value if (twin := misplaced_project_key(knob, key)) is not None}
        for key, twin in misplaced.items():
            twin_top, _, twin_key = twin.partition(".")
            declared = raw.project_values.get(twin_top)
            problems.append(
                _project_level_problem(
                    raw.stack,
                    f"{knob}.{key}",
                    SECRET_MARKER if full_key(knob) in raw.secret_keys else value[key],
                    twin,
                    declared.get(twin_key) if isinstance(declared, dict) else None,
                )
            )
        if misplaced:
            stack_input[knob] = {key: item for key, item in value.items() if key not in misplaced}
    return problems


def _project_level_problem(
    stack: str, path: str, shown: Any, declared_path: str, declared: Any
) -> ConfigProblem:
    """A project-level value (Pulumi.yaml's `declared_path`) set in a stack file at `path`."""
    remove = f"pulumi config rm --path '{path}'" if "." in path else f"pulumi config rm {path}"
    return ConfigProblem(
        stack,
        full_key(path),
        shown,
        "a project-level value is set in the stack; it must be the same in every stack "
        f"(Pulumi.yaml declares {declared_path}: {json.dumps(declared, default=str)})",
        f"remove it from Pulumi.{stack}.yaml (`{remove} -s {stack}`) and change {declared_path} in "
        "Pulumi.yaml if every stack should change",
        parity=True,
    )


def _shown(raw: RawConfig, key: str) -> Any:
    if key in raw.secret_keys:
        return SECRET_MARKER
    return raw.values.get(key)


def _validate(
    model: type[ConfigModel], data: dict[str, Any], stack: str, where: str, problems: list[ConfigProblem]
) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        for detail in error.errors():
            problems.append(_problem_from_pydantic(stack, where, model, detail))
        return None


def _problem_from_pydantic(stack: str, where: str, model: type[ConfigModel], detail: Any) -> ConfigProblem:
    location = [str(part) for part in detail["loc"]]
    key = full_key(".".join(location)) if location else full_key("")
    secret = location[:1] == [SECRETS_KEY]
    missing = detail["type"] == "missing"
    value = SECRET_MARKER if secret else (None if missing else _scrub(detail.get("input")))
    kind = detail["type"]
    if kind == "missing":
        problem = f"required in {where} but not set"
        path = ".".join(location)
        # A missing group of keys (a model): one command per key it holds.
        paths = [f"{path}.{key}" for key in _known_keys(model, location)] or [path]
        fix = (
            f"set it in {where}"
            if where == "Pulumi.yaml config"
            else "; ".join(f"`pulumi config set --path '{each}' <value> -s {stack}`" for each in paths)
        )
    elif kind == "extra_forbidden":
        problem = "unknown key (a typo would otherwise silently fall back to a default)"
        known = _known_keys(model, location[:-1])
        fix = f"remove it from {where}" + (
            f"; the keys allowed here are: {', '.join(known)}" if known else ""
        )
    else:
        problem = detail["msg"]
        fix = f"correct the value in {where}"
    return ConfigProblem(stack, key, value, problem, fix)


def _scrub(value: Any) -> Any:
    """An error's input with any application secrets in it replaced (an error must never print one)."""
    if isinstance(value, dict):
        return {key: SECRET_MARKER if key == SECRETS_KEY else _scrub(item) for key, item in value.items()}
    return value


def _known_keys(model: type[ConfigModel], location: list[str]) -> list[str]:
    """The keys a model accepts at `location` (dict keys and list indexes in the path are skipped)."""
    current: Any = model
    for part in location:
        if not (isinstance(current, type) and issubclass(current, ConfigModel)):
            return []
        fields = {info.alias or name: info for name, info in current.model_fields.items()}
        if part not in fields:
            continue  # a dict key or list index: stay on the same model
        current = _model_of(fields[part].annotation)
    if isinstance(current, type) and issubclass(current, ConfigModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside `X`, `X | None`, `list[X]` or `dict[str, X]`, else None."""
    if isinstance(annotation, type) and issubclass(annotation, ConfigModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _tls_problems(stack: str, settings: StackSettings) -> list[ConfigProblem]:
    """tls.clusterIssuer is read in mode certManager only: required there, refused elsewhere."""
    tls, key = settings.tls, full_key("tls.clusterIssuer")
    if tls.mode is TlsMode.CERT_MANAGER and tls.cluster_issuer is None:
        return [
            ConfigProblem(
                stack,
                key,
                None,
                "tls.mode certManager needs the cert-manager ClusterIssuer that issues the certificates",
                f"`pulumi config set --path 'tls.clusterIssuer' <ClusterIssuer name> -s {stack}`, or set "
                "tls.mode to upstream when a load balancer in front terminates TLS",
            )
        ]
    if tls.mode is TlsMode.UPSTREAM and tls.cluster_issuer is not None:
        return [
            ConfigProblem(
                stack,
                key,
                tls.cluster_issuer,
                "tls.mode upstream takes no ClusterIssuer: the load balancer in front holds the certificate",
                f"`pulumi config rm --path 'tls.clusterIssuer' -s {stack}`",
            )
        ]
    return []


def _cross_problems(stack: str, project: ProjectSettings, settings: StackSettings) -> list[ConfigProblem]:
    problems = []
    declared = [service.name for service in project.services]
    for name in declared:
        if name not in settings.releases:
            problems.append(
                ConfigProblem(
                    stack,
                    full_key(f"releases.{name}"),
                    None,
                    f"service '{name}' is declared in Pulumi.yaml but has no release in this stack",
                    f"`pulumi config set --path 'releases.{name}.replicas' 1 -s {stack}` and set "
                    "activeColor and images.blue / images.green the same way",
                )
            )
    for name in settings.releases:
        if name not in declared:
            problems.append(
                ConfigProblem(
                    stack,
                    full_key(f"releases.{name}"),
                    name,
                    f"unknown service; Pulumi.yaml declares {declared}",
                    f"remove it (`pulumi config rm --path 'releases.{name}' -s {stack}`) or declare "
                    "the service in Pulumi.yaml",
                )
            )
    for service_name, release in settings.releases.items():
        for color in Color:
            image = release.images.of(color)
            if not is_image(image):
                problems.append(
                    ConfigProblem(
                        stack,
                        full_key(f"releases.{service_name}.images.{color}"),
                        image,
                        "not an image reference",
                        "use <repository>@sha256:<64 hex digits> (or <repository>:<tag> where the "
                        "stack policy allows tags)",
                    )
                )
    for name in sorted(set(project.smoke.suites) - set(declared)):
        problems.append(
            ConfigProblem(
                stack,
                full_key(f"smoke.suites.{name}"),
                name,
                f"a smoke suite for a service Pulumi.yaml does not declare; it declares {declared}",
                "rename it to a declared service in Pulumi.yaml, or remove it",
            )
        )
    if settings.strategy.type is StrategyType.CANARY and settings.analysis is None:
        problems.append(
            ConfigProblem(
                stack,
                full_key("strategy.type"),
                settings.strategy.type.value,
                "a canary is judged at every step by the metric analysis, and this stack sets none",
                "set the stack's Prometheus: `pulumi config set --path 'analysis.prometheusUrl' <url> "
                f"-s {stack}` (docs/observability.md), or use type blueGreen",
            )
        )
    for service_name, release in settings.releases.items():
        problems += _sizing_problems(stack, service_name, release)
    specs = {spec.name: spec for spec in project.services}
    for service_name, release in settings.releases.items():
        spec = specs.get(service_name)
        if spec is None:
            continue
        for color in Color:
            problems += undeclared_config_problems(stack, project, spec, release.config.of(color), color)
    # PREVIEW_TOKEN is the stack's own: the value of the preview header (core.gateway), read by the
    # routes and the release tool; the smoke suites' secrets are read by the release tool alone.
    # Neither is mounted into a pod.
    required = project.stack_secret_names
    missing = [name for name in required if name not in settings.app_secrets]
    if missing:
        problems.append(
            ConfigProblem(
                stack,
                full_key(SECRETS_KEY),
                f"missing: {', '.join(missing)}",
                f"{len(missing)} secret(s) the services, the smoke suites or the preview routes read are not "
                f"set: "
                f"{', '.join(missing)}",
                "set each one: "
                + "; ".join(
                    f"`pulumi config set --secret --path '{SECRETS_KEY}.{name}' <value> -s {stack}`"
                    for name in missing
                ),
            )
        )
    unused = [name for name in settings.app_secrets if name not in required]
    if unused:
        problems.append(
            ConfigProblem(
                stack,
                full_key(SECRETS_KEY),
                f"unused: {', '.join(unused)}",
                "no service or smoke check declares these secrets (a typo would leave the real one unset)",
                "remove them, or add them to a service's `secrets:` list (or send them from a smoke "
                "check) in Pulumi.yaml",
            )
        )
    return problems


def _policy_problems(
    stack: str, project: ProjectSettings, settings: StackSettings, policy: StackPolicy
) -> list[ConfigProblem]:
    problems = []
    rule = f"stackPolicies.{stack} in Pulumi.yaml"
    for service in project.services:
        release = settings.releases.get(service.name)
        if release is None:
            continue
        if release.replicas < policy.min_replicas:
            problems.append(
                ConfigProblem(
                    stack,
                    full_key(f"releases.{service.name}.replicas"),
                    release.replicas,
                    f"{stack} runs at least {policy.min_replicas} replicas of every service ({rule})",
                    f"`pulumi config set --path 'releases.{service.name}.replicas' "
                    f"{policy.min_replicas} -s {stack}`",
                )
            )
        if release.idle_replicas is not None and release.idle_replicas < policy.min_idle_replicas:
            problems.append(
                ConfigProblem(
                    stack,
                    full_key(f"releases.{service.name}.idleReplicas"),
                    release.idle_replicas,
                    f"{stack} keeps at least {policy.min_idle_replicas} pods on the idle color, so a "
                    f"rollback finds it running ({rule}: minIdleReplicas)",
                    f"`pulumi config set --path 'releases.{service.name}.idleReplicas' "
                    f"{policy.min_idle_replicas} -s {stack}`, or remove it (full size)",
                )
            )
        if policy.require_image_digest:
            for color in Color:
                image = release.images.of(color)
                if is_image(image) and not digest_of(image):
                    problems.append(
                        ConfigProblem(
                            stack,
                            full_key(f"releases.{service.name}.images.{color}"),
                            image,
                            f"{stack} requires images pinned by digest; a tag can change under you ({rule})",
                            "use <repository>@sha256:<64 hex digits>, e.g. the digest "
                            "`docker buildx imagetools inspect <image>` prints",
                        )
                    )
    retention = settings.database.backup_retention_days
    if retention < policy.min_backup_retention_days:
        problems.append(
            ConfigProblem(
                stack,
                full_key("database.backupRetentionDays"),
                retention,
                f"{stack} keeps database backups at least {policy.min_backup_retention_days} days, how "
                f"far back a restore can reach ({rule}: minBackupRetentionDays)",
                f"`pulumi config set --path 'database.backupRetentionDays' "
                f"{policy.min_backup_retention_days} -s {stack}`",
            )
        )
    if policy.require_deletion_protection and not settings.database.deletion_protection:
        problems.append(
            ConfigProblem(
                stack,
                full_key("database.deletionProtection"),
                False,
                f"{stack} requires deletion protection on the database ({rule})",
                f"`pulumi config set --path 'database.deletionProtection' true -s {stack}`",
            )
        )
    return problems


def undeclared_config_problems(
    stack: str, project: ProjectSettings, spec: ServiceSpec, config: ColorConfig, color: Color
) -> list[ConfigProblem]:
    """A color's own values for flags or env vars that Pulumi.yaml does not declare: which keys exist
    is project-level, so every stack runs the same set and only the values differ."""
    key = f"releases.{spec.name}.config.{color}"
    problems = [
        ConfigProblem(
            stack,
            full_key(f"{key}.flags.{name}"),
            value,
            f"no feature flag {name} is declared; Pulumi.yaml declares {sorted(project.feature_flags)}",
            "declare it under `featureFlags` in Pulumi.yaml (with its default), or drop the value",
        )
        for name, value in sorted(config.flags.items())
        if name not in project.feature_flags
    ]
    problems += [
        ConfigProblem(
            stack,
            full_key(f"{key}.env.{name}"),
            value,
            f"{spec.name} declares no env var {name}; it declares {sorted(spec.env)}",
            f"declare it under {spec.name}'s `env` in Pulumi.yaml (with its default), or drop the value",
        )
        for name, value in sorted(config.env.items())
        if name not in spec.env
    ]
    return problems


def _sizing_problems(stack: str, service: str, release: ServiceRelease) -> list[ConfigProblem]:
    """An autoscaler's ceiling below its floor, or an idle size above the full size."""
    key = f"releases.{service}"
    problems = []
    if release.max_replicas is not None and release.max_replicas < release.replicas:
        problems.append(
            ConfigProblem(
                stack,
                full_key(f"{key}.maxReplicas"),
                release.max_replicas,
                f"the autoscaler's ceiling is below its floor (replicas: {release.replicas})",
                f"`pulumi config set --path '{key}.maxReplicas' {release.replicas} -s {stack}` or more",
            )
        )
    if release.idle_replicas is not None and release.idle_replicas > release.replicas:
        problems.append(
            ConfigProblem(
                stack,
                full_key(f"{key}.idleReplicas"),
                release.idle_replicas,
                f"the idle color would be larger than a live one (replicas: {release.replicas})",
                f"set it to at most {release.replicas}, or remove it (the idle color stays at full size)",
            )
        )
    return problems


def _database_problems(stack: str, settings: StackSettings) -> list[ConfigProblem]:
    database = settings.database
    if not database.windows_overlap:
        return []
    return [
        ConfigProblem(
            stack,
            full_key("database.maintenanceWindow"),
            database.maintenance_window,
            f"overlaps the daily backup window {database.backup_window} (UTC); RDS refuses windows that "
            "overlap",
            f"move one of them, e.g. `pulumi config set --path 'database.maintenanceWindow' "
            f"<ddd:hh24:mi-ddd:hh24:mi outside {database.backup_window}> -s {stack}`",
        )
    ]
