"""The platform's mandatory policies: what must never reach a cluster or an account.

Plain functions `(args, report_violation)`, as pulumi-policy calls them, so they are unit-tested on the
resources the program registers under the mock runtime, run offline by `release plan`, and run by
the engine in PR checks (`pulumi preview --policy-pack policy`, this directory's `__main__.py`).
`args` needs only `resource_type`, `props` (engine, camelCase names), `urn` and `name`.

Per-stack strictness is data, as in the program: the stack is read from the URN and its rules from
`stackPolicies` in the project's Pulumi.yaml (digest pinning, deletion protection, backup
retention), read by the
project's one config reader (core.config.sources: the safe loader, no aliases, no duplicate keys, a
size cap). The pack imports `core` only; its entry point puts the repository on sys.path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from core.config.sources import read_project_file
from core.gateway import (
    FORBIDDEN_ANNOTATION_PREFIX,
    GATEWAY_TYPE,
    HTTPROUTE_TYPE,
    HTTPS_LISTENER_PREFIX,
    PREVIEW_HEADER,
    TLS_TERMINATION,
    UPSTREAM,
)
from core.images import digest_of

REPOSITORY = Path(__file__).resolve().parents[1]
PROJECT_FILE = REPOSITORY / "Pulumi.yaml"
SECRET_LOOKING = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS?)", re.IGNORECASE)
REFERENCE = re.compile(r"^(arn:|projects/|vault:|[A-Za-z0-9_./-]+_ARN$)")

WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job")
DATABASE = "aws:rds/instance:Instance"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
IAM_POLICIES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")
IAM_ROLE = "aws:iam/role:Role"
IAM_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
AWS_MANAGED_POLICY = "arn:aws:iam::aws:policy/"
SERVICE_ACCOUNT_SUBJECT = re.compile(
    r"system:serviceaccount:[a-z0-9]([a-z0-9-]*[a-z0-9])?:[a-z0-9]([a-z0-9.-]*[a-z0-9])?"
)

ReportViolation = Callable[..., None]
ANY_TYPE = "*"
"""A rule's resource type that matches every resource."""


class Args(Protocol):
    @property
    def resource_type(self) -> str: ...
    @property
    def props(self) -> Mapping[str, Any]: ...
    @property
    def urn(self) -> str: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    resource_types: tuple[str, ...]
    validate: Callable[[Args, ReportViolation], None]

    def check(self, args: Args, report_violation: ReportViolation) -> None:
        if ANY_TYPE in self.resource_types or args.resource_type in self.resource_types:
            self.validate(args, report_violation)


@cache
def stack_policies(project_file: Path = PROJECT_FILE) -> dict[str, Any]:
    """`stackPolicies` from Pulumi.yaml (its `value:`); a ValueError naming the file if malformed."""
    declared = read_project_file(project_file).get("stackPolicies") or {}
    if not isinstance(declared, dict):
        raise ValueError(f"{project_file}: config.stackPolicies must be a mapping of stack names to rules")
    return dict(declared)


@cache
def supply_chain_declared(project_file: Path = PROJECT_FILE) -> bool:
    """Whether Pulumi.yaml declares a project-level `supplyChain` policy."""
    return bool(read_project_file(project_file).get("supplyChain"))


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::...` -> `<stack>`."""
    return urn.split("::", 1)[0].rsplit(":", 1)[-1]


def _policy(urn: str) -> Mapping[str, Any]:
    return stack_policies().get(stack_of(urn)) or {}


def _pod_spec(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((props.get("spec") or {}).get("template") or {}).get("spec") or {}


def _containers(props: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    spec = _pod_spec(props)
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def _images_pinned(args: Args, report_violation: ReportViolation) -> None:
    if not _policy(args.urn).get("requireImageDigest", True):
        return  # the stack's policy allows tags (dev)
    for container in _containers(args.props):
        image = str(container.get("image", ""))
        if not digest_of(image):
            report_violation(
                f"container '{container.get('name')}' runs '{image}', not pinned by digest; "
                "use <repository>@sha256:<digest>"
            )


def supply_chain_problem(stack: str, policy: Mapping[str, Any], declared: bool) -> str:
    """Why a stack that receives images by promotion (staging, production) does not enforce the
    supply-chain policy, or ''. An entry stage (dev) may only report."""
    if not (policy.get("promotion") or {}).get("promoteFrom"):
        return ""
    mode = (policy.get("supplyChain") or {}).get("mode")
    if declared and mode == "enforce":
        return ""
    missing = (
        "Pulumi.yaml declares no supplyChain policy" if not declared else f"its supplyChain mode is {mode!r}"
    )
    return (
        f"stack '{stack}' receives images by promotion but does not refuse unverified ones: {missing}; "
        f"declare supplyChain in Pulumi.yaml and set stackPolicies.{stack}.supplyChain.mode: enforce "
        "(docs/supply-chain.md#the-policy)"
    )


def _supply_chain_enforced(args: Args, report_violation: ReportViolation) -> None:
    stack = stack_of(args.urn)
    problem = supply_chain_problem(stack, _policy(args.urn), supply_chain_declared())
    if problem:
        report_violation(problem)


def _hardened(args: Args, report_violation: ReportViolation) -> None:
    pod_non_root = bool((_pod_spec(args.props).get("securityContext") or {}).get("runAsNonRoot"))
    for container in _containers(args.props):
        context = container.get("securityContext") or {}
        name = container.get("name")
        missing = []
        if not (context.get("runAsNonRoot") or pod_non_root):
            missing.append("runAsNonRoot: true")
        if not context.get("readOnlyRootFilesystem"):
            missing.append("readOnlyRootFilesystem: true")
        if context.get("allowPrivilegeEscalation", True):
            missing.append("allowPrivilegeEscalation: false")
        if context.get("privileged"):
            missing.append("privileged: false")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            missing.append("capabilities.drop: [ALL]")
        if missing:
            report_violation(
                f"container '{name}' is not hardened; its securityContext needs {', '.join(missing)}"
            )


def _probes_and_limits(args: Args, report_violation: ReportViolation) -> None:
    long_running = args.resource_type == "kubernetes:apps/v1:Deployment"
    for container in _containers(args.props):
        name = container.get("name")
        limits = (container.get("resources") or {}).get("limits") or {}
        absent = [resource for resource in ("cpu", "memory") if resource not in limits]
        if absent:
            report_violation(f"container '{name}' has no {' or '.join(absent)} limit")
        if long_running:
            for probe in ("readinessProbe", "livenessProbe"):
                if not container.get(probe):
                    report_violation(f"container '{name}' has no {probe}")


def _database_private_and_encrypted(args: Args, report_violation: ReportViolation) -> None:
    if not args.props.get("storageEncrypted"):
        report_violation("the database's storage is not encrypted (storageEncrypted: true)")
    if args.props.get("publiclyAccessible"):
        report_violation("the database is publicly accessible (publiclyAccessible must be false)")


def _deletion_protection(args: Args, report_violation: ReportViolation) -> None:
    if _policy(args.urn).get("requireDeletionProtection") and not args.props.get("deletionProtection"):
        stack = stack_of(args.urn)
        report_violation(
            f"stack '{stack}' requires deletion protection on the database (deletionProtection: true)"
        )


def _database_settings(args: Args, report_violation: ReportViolation) -> None:
    group = args.props.get("parameterGroupName")
    if not group or str(group).startswith("default."):
        report_violation(
            "the database runs on RDS's default parameter group; give it the program's own "
            "(parameterGroupName), so every stack has the same settings"
        )
    if not args.props.get("performanceInsightsEnabled"):
        report_violation("Performance Insights is off (performanceInsightsEnabled: true)")
    if args.props.get("applyImmediately"):
        report_violation(
            "changes are applied immediately, not in the maintenance window (applyImmediately: false)"
        )
    minimum = _policy(args.urn).get("minBackupRetentionDays") or 1
    retention = args.props.get("backupRetentionPeriod") or 0
    if retention < minimum:
        report_violation(
            f"backups are kept {retention} days; stack '{stack_of(args.urn)}' keeps them at least {minimum} "
            "(backupRetentionPeriod)"
        )


def _no_plaintext_secrets(args: Args, report_violation: ReportViolation) -> None:
    for key, value in (args.props.get("data") or {}).items():
        if SECRET_LOOKING.search(key) and not REFERENCE.match(str(value)) and not key.endswith("_ARN"):
            report_violation(f"ConfigMap key '{key}' looks like a secret in plain text; put it in a Secret")


def _spec(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object's spec; `{}` when it is not readable here (a preview route's spec holds the preview
    token, so `release plan` sees it redacted; the engine hands the policy pack the real one)."""
    spec = props.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _gateway_tls(args: Args, report_violation: ReportViolation) -> None:
    """Every listener with a hostname serves HTTPS with a certificate (unless a load balancer in front
    terminates TLS: `tls.mode` upstream); a plain-HTTP listener without a hostname only redirects."""
    annotations = (args.props.get("metadata") or {}).get("annotations") or {}
    upstream = annotations.get(TLS_TERMINATION) == UPSTREAM
    for listener in _spec(args.props).get("listeners") or []:
        name = listener.get("name")
        if upstream or (listener.get("protocol") != "HTTPS" and not listener.get("hostname")):
            continue
        refs = (listener.get("tls") or {}).get("certificateRefs") or []
        if listener.get("protocol") != "HTTPS" or not refs:
            report_violation(
                f"listener {name!r} for host {listener.get('hostname')!r} does not terminate TLS with a "
                "certificate: users and health checks need HTTPS"
            )


def _route_attached_with_tls(args: Args, report_violation: ReportViolation) -> None:
    """A route names its parent Gateway listener; one that reaches a backend is on a host's HTTPS
    listener (`https-<service>`), never on the plain-HTTP listener (which only redirects)."""
    if not isinstance(args.props.get("spec"), Mapping):
        return  # redacted offline (a preview route): checked by the engine, which sees the real spec
    spec = _spec(args.props)
    parents = spec.get("parentRefs") or []
    if not parents:
        report_violation("the route has no parentRefs: it attaches to no Gateway")
    has_backend = any(rule.get("backendRefs") for rule in spec.get("rules") or [])
    for parent in parents:
        section = str(parent.get("sectionName") or "")
        if has_backend and not section.startswith(HTTPS_LISTENER_PREFIX):
            report_violation(
                f"the route sends traffic to a backend from listener {section or '(every listener)'!r}: "
                f"attach it to its host's HTTPS listener ({HTTPS_LISTENER_PREFIX}<service>)"
            )
    if has_backend and not spec.get("hostnames"):
        report_violation("the route reaches a backend on no hostname: name the host its listener secures")


def _route_weights(args: Args, report_violation: ReportViolation) -> None:
    """A rule that splits traffic by weight writes whole numbers 0..100 summing to 100, so each weight
    is the backend's percentage (core.gateway.canary_weights); a rule that reaches the idle color's
    preview Service without the preview header does so only as such a weighted split."""
    for rule in _spec(args.props).get("rules") or []:
        refs = rule.get("backendRefs") or []
        weights = [ref.get("weight") for ref in refs if "weight" in ref]
        if weights:
            if not all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w <= 100 for w in weights):
                report_violation(f"rule {rule.get('name')!r}: weights {weights} must be whole numbers 0..100")
            elif len(weights) != len(refs) or sum(weights) != 100:
                report_violation(
                    f"rule {rule.get('name')!r}: weights {weights} must be set on every backend and sum to "
                    "100, so the idle color's weight is the canary step's percentage"
                )
        reaches_preview = any(str(ref.get("name", "")).endswith("-preview") for ref in refs)
        if reaches_preview and not _protected(rule) and not (weights and len(refs) > 1):
            report_violation(
                f"rule {rule.get('name')!r} sends every request to the idle color without the preview "
                f"header ({PREVIEW_HEADER}): anyone would reach an unreleased color"
            )


def _protected(rule: Mapping[str, Any]) -> bool:
    """Every match of the rule requires the preview header with a value."""
    matches = rule.get("matches") or []
    return bool(matches) and all(
        any(
            str(header.get("name", "")).lower() == PREVIEW_HEADER.lower()
            and header.get("type", "Exact") == "Exact"
            and header.get("value")
            for header in match.get("headers") or []
        )
        for match in matches
    )


def _no_retired_annotations(args: Args, report_violation: ReportViolation) -> None:
    props = args.props
    metadatas = [
        props.get("metadata") or {},
        ((_spec(props).get("template") or {}).get("metadata")) or {},
    ]
    for metadata in metadatas:
        for key in (metadata.get("annotations") or {}) if isinstance(metadata, Mapping) else {}:
            if str(key).startswith(FORBIDDEN_ANNOTATION_PREFIX):
                report_violation(
                    f"annotation {key!r} belongs to the retired Ingress controller; "
                    "traffic is on Gateway API (docs/traffic.md)"
                )


def _own_service_account(args: Args, report_violation: ReportViolation) -> None:
    spec = _pod_spec(args.props)
    account = spec.get("serviceAccountName") or "default"
    if account == "default":
        report_violation(
            "the pods run as the namespace's default ServiceAccount; give each service its own "
            "(serviceAccountName), so its IAM role trusts exactly that account"
        )
    if spec.get("automountServiceAccountToken", True):
        report_violation("the pods mount a Kubernetes API token (automountServiceAccountToken: false)")


def _exact_iam_resources(args: Args, report_violation: ReportViolation) -> None:
    if args.resource_type == IAM_ATTACHMENT:
        _attached(args.props.get("policyArn"), report_violation)
        return
    if args.resource_type == IAM_ROLE:
        for arn in args.props.get("managedPolicyArns") or []:
            _attached(arn, report_violation)
        for inline in args.props.get("inlinePolicies") or []:
            _statements(inline.get("policy"), _grant_problems, report_violation)
        _statements(args.props.get("assumeRolePolicy"), _trust_problems, report_violation)
        return
    _statements(args.props.get("policy"), _grant_problems, report_violation)


def _attached(arn: Any, report_violation: ReportViolation) -> None:
    """A managed policy attached to a role: never an AWS-managed one (they grant by wildcard, e.g.
    AdministratorAccess), never a pattern; a customer-managed policy is checked where it is declared."""
    if not isinstance(arn, str):
        return  # not known yet (an output of another resource): checked where it is declared
    if arn.startswith(AWS_MANAGED_POLICY) or "*" in arn:
        report_violation(
            f"the role gets the managed policy {arn}: AWS-managed policies grant far more than one "
            "service needs; declare an aws.iam.RolePolicy naming exact actions and resources"
        )


Statement = Mapping[str, Any]


def _statements(
    document: Any,
    problems_of: Callable[[Statement], list[str]],
    report_violation: ReportViolation,
) -> None:
    """Every problem of every statement in a policy document (JSON text)."""
    if not isinstance(document, str):
        return  # not known yet (an output of another resource): checked where it is
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError:
        report_violation("the policy document is not JSON")
        return
    statements = parsed.get("Statement") or [] if isinstance(parsed, dict) else []
    for statement in statements if isinstance(statements, list) else [statements]:
        for problem in problems_of(statement if isinstance(statement, dict) else {}):
            report_violation(f"statement {statement.get('Sid') or '?'} {problem}")


def _grant_problems(statement: Statement) -> list[str]:
    problems = []
    for field in ("Resource", "Action"):
        values = statement.get(field)
        values = values if isinstance(values, list) else [values]
        loose = [value for value in values if not isinstance(value, str) or "*" in value]
        if loose:
            problems.append(f"grants {field} {loose}: name exact ones")
    if "NotResource" in statement or "NotAction" in statement:
        problems.append("uses NotResource/NotAction: name exact ones")
    return problems


def _trust_problems(statement: Statement) -> list[str]:
    """Who may assume the role: never anyone (`*`); through a web identity, exactly one
    ServiceAccount (`system:serviceaccount:<namespace>:<name>`), matched with StringEquals."""
    problems = []
    principal = statement.get("Principal")
    if principal == "*" or (isinstance(principal, dict) and "*" in json.dumps(principal)):
        problems.append(f"lets {principal} assume the role: name the one principal that may")
    actions = statement.get("Action")
    if "sts:AssumeRoleWithWebIdentity" not in (actions if isinstance(actions, list) else [actions]):
        return problems
    condition = statement.get("Condition") or {}
    for operator in condition:
        if operator != "StringEquals":
            problems.append(
                f"matches the web identity with {operator}: use StringEquals on the exact subject"
            )
    equals = condition.get("StringEquals") or {}
    subjects = [value for key, value in equals.items() if key.endswith(":sub")]
    subjects = [item for value in subjects for item in (value if isinstance(value, list) else [value])]
    exact = [subject for subject in subjects if SERVICE_ACCOUNT_SUBJECT.fullmatch(str(subject))]
    if not subjects or len(exact) != len(subjects):
        problems.append(
            f"trusts the web identity subjects {subjects or 'of anyone'}: name exactly "
            "system:serviceaccount:<namespace>:<name> under StringEquals '<issuer>:sub'"
        )
    return problems


def _network_policy(args: Args, report_violation: ReportViolation) -> None:
    spec = args.props.get("spec") or {}
    if not isinstance(spec.get("podSelector"), dict):
        report_violation("the policy has no podSelector: use {} for every pod, or the pods' labels")
    types = spec.get("policyTypes") or []
    if not types:
        report_violation("the policy declares no policyTypes: say which directions it governs")
    directions = (("Ingress", "ingress", "from"), ("Egress", "egress", "to"))
    denies = {"Ingress", "Egress"} <= set(types)
    for kind, field, peers in directions:
        rules = spec.get(field) or []
        if rules and kind not in types:
            report_violation(f"the policy has {field} rules but policyTypes does not name {kind}")
        if kind in types and not rules and not denies:
            report_violation(
                f"the policy governs {kind} with no rule, a deny: a default deny declares both "
                "Ingress and Egress; an allow rule names its peers and ports"
            )
        for index, rule in enumerate(rules):
            if not rule.get(peers):
                report_violation(f"{field}[{index}] allows every peer: name them in '{peers}'")
            if not rule.get("ports"):
                report_violation(f"{field}[{index}] allows every port: name them in 'ports'")


RULES: tuple[Rule, ...] = (
    Rule(
        "images-pinned-by-digest",
        "Images are pinned by digest wherever the stack policy requires it.",
        WORKLOADS,
        _images_pinned,
    ),
    Rule(
        "hardened-containers",
        "Containers run as non-root, read-only root filesystem, no privilege escalation, no capabilities.",
        WORKLOADS,
        _hardened,
    ),
    Rule(
        "probes-and-limits",
        "Containers have CPU and memory limits; long-running ones readiness and liveness probes.",
        WORKLOADS,
        _probes_and_limits,
    ),
    Rule(
        "database-private-and-encrypted",
        "Databases are encrypted at rest and not publicly accessible.",
        (DATABASE,),
        _database_private_and_encrypted,
    ),
    Rule(
        "deletion-protection",
        "Databases have deletion protection where the stack policy requires it.",
        (DATABASE,),
        _deletion_protection,
    ),
    Rule(
        "database-settings",
        "Databases use the program's own parameter group, Performance Insights, changes in the maintenance "
        "window and backups kept at least as long as the stack policy requires.",
        (DATABASE,),
        _database_settings,
    ),
    Rule(
        "no-plaintext-secrets-in-configmaps",
        "ConfigMaps hold no secret-looking values in plain text.",
        (CONFIG_MAP,),
        _no_plaintext_secrets,
    ),
    Rule(
        "tls-on-every-listener",
        "Every Gateway listener with a hostname terminates TLS with a certificate (tls.mode upstream: "
        "a load balancer in front does); a plain-HTTP listener has no hostname and only redirects.",
        (GATEWAY_TYPE,),
        _gateway_tls,
    ),
    Rule(
        "route-attached-with-tls",
        "Every HTTPRoute has parentRefs; one that reaches a backend names a hostname and attaches to "
        "that host's HTTPS listener, never to the plain-HTTP one.",
        (HTTPROUTE_TYPE,),
        _route_attached_with_tls,
    ),
    Rule(
        "route-weights-and-protected-preview",
        "HTTPRoute weights are whole numbers 0..100 on every backend of a split, summing to 100 (the "
        "idle color's weight is the canary step); a rule reaching the idle color otherwise requires "
        "the preview header.",
        (HTTPROUTE_TYPE,),
        _route_weights,
    ),
    Rule(
        "no-retired-ingress-annotations",
        "No object carries an annotation of the retired Ingress controller (nginx.ingress.kubernetes.io/*).",
        (ANY_TYPE,),
        _no_retired_annotations,
    ),
    Rule(
        "own-service-account",
        "Every workload runs as its own ServiceAccount, with no Kubernetes API token mounted.",
        WORKLOADS,
        _own_service_account,
    ),
    Rule(
        "exact-iam-resources",
        "IAM policies (inline, on a role, attached) name exact actions and resources: no wildcard, no "
        "NotResource, no AWS-managed policy; a role's web-identity trust names exactly one "
        "ServiceAccount with StringEquals.",
        (*IAM_POLICIES, IAM_ROLE, IAM_ATTACHMENT),
        _exact_iam_resources,
    ),
    Rule(
        "supply-chain-enforced",
        "A stack that receives images by promotion (staging, production) enforces Pulumi.yaml's "
        "supplyChain policy: an image without a trusted signature, provenance, a recent scan and an "
        "SBOM is refused before it is released (docs/supply-chain.md).",
        WORKLOADS,
        _supply_chain_enforced,
    ),
    Rule(
        "network-policy-present",
        "Every NetworkPolicy declares its policyTypes and a podSelector; a policy that does not "
        "declare both Ingress and Egress is an allow rule whose every rule names its peers and ports. "
        "Per resource only: that a namespace has its default deny is tested on the program "
        "(tests/test_network_policy.py), not here.",
        (NETWORK_POLICY,),
        _network_policy,
    ),
)


@dataclass(frozen=True)
class ResourceArgs:
    """What `release plan` hands the rules offline (the engine hands pulumi-policy's own args)."""

    resource_type: str
    props: Mapping[str, Any]
    urn: str
    name: str


@dataclass(frozen=True)
class Violation:
    rule: str
    urn: str
    name: str
    message: str

    def render(self) -> str:
        return f"[{self.rule}] {self.name}: {self.message}"


def violations_of(args: Args) -> list[Violation]:
    """Every rule's violations for one resource (what `release plan` reports offline)."""
    found: list[Violation] = []
    for rule in RULES:
        rule.check(
            args,
            lambda message, urn=None, rule=rule: found.append(
                Violation(rule.name, args.urn, args.name, message)
            ),
        )
    return found
