"""`release plan`: what each stack declares, evaluated offline, and how the stacks differ.

The program is evaluated under Pulumi's mock runtime (no CLI, no credentials, no cloud). The result
is what the program *declares* for a stack, not what the cloud holds: `pulumi preview -s <stack>`
compares with the real state.

Nothing secret reaches an output (text, JSON, stderr): values under `platform:appSecrets` and under any
key holding a `secure:` value are shown as the placeholder, encrypted or not; a secret stored in
plain text is an error of that stack ("application secrets are stored in plain text", exit 2) and a
parity violation where it makes stacks differ, never a knob.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config.base import PROJECT_NAME, SECRET_MARKER, SECRETS_KEY, full_key
from core.config.rules import load_stack_config
from core.config.sources import StackFile, read_stack_file, stack_secret_names_of
from core.config.stack import StackConfig
from core.errors import ConfigError, ConfigProblem, ExitCode, ReleaseError
from policy.platform_policies import RULES, ResourceArgs, Violation, violations_of
from release.log import Progress
from release.offline.key_settings import grouped_by_component, key_settings, kind_of, short_type
from release.offline.mock_runtime import ProgramRun, evaluate_program
from release.offline.parity import Difference, config_differences, knob_leaves, resource_differences
from release.offline.workers import (
    SERVICES_WORTH_A_WORKER,
    Evaluation,
    evaluate_here,
    evaluate_in_workers,
    usable_cores,
    worth_forking,
)

HONESTY_NOTE = (
    "What the program DECLARES for each stack, evaluated offline under Pulumi's mock runtime. "
    "This is not what the cloud holds: `pulumi preview -s <stack>` compares with the real state."
)


@dataclass
class StackPlan:
    stack: str
    file: str
    run: ProgramRun | None = None
    error: ReleaseError | None = None
    config: StackConfig | None = None
    """The stack's validated config (None when the program refuses it)."""
    unset_secrets: list[str] = field(default_factory=list)
    policy_violations: list[Violation] = field(default_factory=list)
    """What the policy pack (policy/) would refuse in `pulumi preview --policy-pack policy`."""

    @property
    def refused_for_parity_only(self) -> bool:
        """The program refuses this stack only because of parity problems (reported as violations)."""
        return isinstance(self.error, ConfigError) and all(p.parity for p in self.error.problems)


@dataclass(frozen=True)
class ParityViolation:
    """One parity violation, named with its fix: a difference between the stacks that no knob
    explains, with the program's refusals it causes (a stack it refuses for a project-level value),
    or such a refusal on its own."""

    name: str
    values: dict[str, Any]
    reason: str
    fix: str
    difference: Difference | None = None
    refusals: tuple[ConfigProblem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        found = self.difference.to_json() if self.difference is not None else {"layer": "config"}
        refused = [
            {"stack": problem.stack, "key": problem.key, "problem": problem.problem, "fix": problem.fix}
            for problem in self.refusals
        ]
        return {
            **found,
            "name": self.name,
            "values": self.values,
            "reason": self.reason,
            "fix": self.fix,
            "refusedStacks": refused,
        }


@dataclass
class PlanReport:
    stacks: list[StackPlan]
    compared: bool
    differences: list[Difference] = field(default_factory=list)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each stack's config as it may be shown (`redacted_config`): full key -> value."""

    @property
    def violations(self) -> list[Difference]:
        return [difference for difference in self.differences if difference.is_violation]

    @property
    def parity_violations(self) -> list[ParityViolation]:
        """Every parity violation, once: a refusal of the program for a parity problem is told with
        the difference it is about (the program's own fix first), or on its own if no difference is."""
        refusals = [
            problem
            for plan in self.stacks
            if plan.refused_for_parity_only and isinstance(plan.error, ConfigError)
            for problem in plan.error.problems
        ]
        found: list[ParityViolation] = []
        told: set[int] = set()
        for difference in self.violations:
            about = [
                (index, problem)
                for index, problem in enumerate(refusals)
                if _about(problem.key, difference.path) and difference.layer == "config"
            ]
            told.update(index for index, _ in about)
            problems = tuple(problem for _, problem in about)
            fixes = list(dict.fromkeys(problem.fix for problem in problems)) or [difference.fix]
            found.append(
                ParityViolation(
                    difference.name,
                    difference.values,
                    difference.reason,
                    "; ".join(fixes),
                    difference,
                    problems,
                )
            )
        for index, problem in enumerate(refusals):
            if index not in told:
                found.append(
                    ParityViolation(
                        problem.key,
                        {problem.stack: problem.value},
                        problem.problem,
                        problem.fix,
                        None,
                        (problem,),
                    )
                )
        return found

    @property
    def violation_count(self) -> int:
        """Differences no knob explains, and parity problems of refused stacks no difference tells."""
        return len(self.parity_violations)

    @property
    def policy_violation_count(self) -> int:
        return sum(len(plan.policy_violations) for plan in self.stacks)

    @property
    def exit_code(self) -> ExitCode:
        """2: a stack's config is invalid; 1: a parity or policy violation; 0: all clear."""
        for plan in self.stacks:
            if plan.error is not None and not (self.compared and plan.refused_for_parity_only):
                return plan.error.exit_code
        if self.violation_count or self.policy_violation_count:
            return ExitCode.FINDING
        return ExitCode.OK


def _about(key: str, path: str) -> bool:
    """Whether a problem with config `key` is about the config leaf `path` (or the reverse)."""
    return any(
        inner == outer or inner.startswith((f"{outer}.", f"{outer}["))
        for inner, outer in ((path, key), (key, path))
    )


def plan(
    project_dir: Path,
    stacks: list[str],
    compare: bool,
    progress: Progress,
    services_worth_a_worker: int = SERVICES_WORTH_A_WORKER,
) -> PlanReport:
    """Evaluate each stack offline; with `compare`, classify every difference between them.

    Stacks of `services_worth_a_worker` services or more are evaluated in worker processes, as many
    at a time as there are cores (release.offline.workers); the report is the same either way."""
    # the services' secrets, the smoke suites' and the stack's preview token (core.gateway)
    secret_names = stack_secret_names_of(project_dir)
    files: dict[str, StackFile] = {}
    plans: list[StackPlan] = []
    for stack in stacks:
        stack_file = read_stack_file(project_dir, stack, secret_names)
        files[stack] = stack_file
        stack_plan = StackPlan(stack, stack_file.path.name, unset_secrets=stack_file.unset_secrets)
        plans.append(stack_plan)
        try:
            stack_plan.config = load_stack_config(stack_file.raw)
        except ReleaseError as error:
            stack_plan.error = error
    valid = [stack_plan for stack_plan in plans if stack_plan.config is not None]
    services = max((len(stack_plan.config.services) for stack_plan in valid if stack_plan.config), default=0)
    evaluations = _evaluations(
        project_dir,
        [files[stack_plan.stack] for stack_plan in valid],
        workers=worth_forking(len(valid), services, services_worth_a_worker, usable_cores()),
        progress=progress,
    )
    for stack_plan in valid:
        evaluation = evaluations[stack_plan.stack]
        stack_plan.run, stack_plan.error = evaluation.run, evaluation.error
        stack_plan.policy_violations = evaluation.policy_violations

    shown = {stack: redacted_config(stack_file) for stack, stack_file in files.items()}
    report = PlanReport(plans, compared=compare, configs=shown)
    if compare:
        plaintext = {stack: stack_file.plaintext_secrets for stack, stack_file in files.items()}
        report.differences = config_differences(shown, plaintext)
        runs = {plan.stack: plan.run for plan in plans if plan.run is not None}
        if len(runs) > 1:
            report.differences += resource_differences(runs, knob_leaves(shown))
    return report


def _evaluations(
    project_dir: Path, stack_files: list[StackFile], workers: int, progress: Progress
) -> dict[str, Evaluation]:
    """Each stack's evaluation and policy verdict: in `workers` forked processes, or here (0)."""

    def evaluate(stack_file: StackFile) -> tuple[ProgramRun, list[Violation]]:
        run = evaluate_stack_file(project_dir, stack_file)
        return run, policy_violations(run)

    if workers:
        names = ", ".join(f"'{stack_file.stack}'" for stack_file in stack_files)
        progress(f"evaluating stacks {names} under the mock runtime, {workers} at a time ...")
        return evaluate_in_workers(evaluate, stack_files, workers, progress)
    evaluations: dict[str, Evaluation] = {}
    for stack_file in stack_files:
        progress(f"evaluating stack '{stack_file.stack}' under the mock runtime ...")
        evaluations[stack_file.stack] = evaluate_here(evaluate, stack_file)
    return evaluations


def redacted_config(stack_file: StackFile) -> dict[str, Any]:
    """The stack's config as it may be shown: every value of a secret key (and of appSecrets) as
    the placeholder, keeping the structure (the names of the secrets)."""
    secret_keys = {*stack_file.raw.secret_keys, full_key(SECRETS_KEY)}
    return {
        key: _placeholders(value) if key in secret_keys else value
        for key, value in stack_file.raw.values.items()
    }


def _placeholders(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _placeholders(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_placeholders(item) for item in value]
    return SECRET_MARKER


def policy_violations(run: ProgramRun) -> list[Violation]:
    """The policy pack's rules applied offline to every resource the program registered."""
    return [
        violation
        for resource in run.resources
        for violation in violations_of(
            ResourceArgs(resource.type, resource.inputs, resource.urn, resource.name)
        )
    ]


def evaluate_stack_file(project_dir: Path, stack_file: StackFile) -> ProgramRun:
    """Run the project's `__main__.py` under the mock runtime with one stack file's config."""
    return evaluate_program(
        project_dir / "__main__.py",
        PROJECT_NAME,
        stack_file.stack,
        stack_file.engine_config,
        stack_file.secret_keys,
    )


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def to_json(report: PlanReport) -> dict[str, Any]:
    stacks: dict[str, Any] = {}
    for stack_plan in report.stacks:
        entry: dict[str, Any] = {
            "file": stack_plan.file,
            "secretsNotSetInFile": stack_plan.unset_secrets,
        }
        if stack_plan.error is not None:
            entry["error"] = str(stack_plan.error)
            if isinstance(stack_plan.error, ConfigError):
                entry["problems"] = [
                    {
                        "key": problem.key,
                        "value": problem.value,
                        "problem": problem.problem,
                        "fix": problem.fix,
                        "parity": problem.parity,
                    }
                    for problem in stack_plan.error.problems
                ]
        if stack_plan.run is not None:
            entry["resources"] = [
                {
                    "type": resource.type,
                    "name": resource.name,
                    "component": top.name if top is not None else None,
                    "componentKind": kind_of(top.type) if top is not None else None,
                    "settings": key_settings(resource),
                }
                for top, resources in grouped_by_component(stack_plan.run)
                for resource in resources
            ]
            entry["outputs"] = dict(sorted(stack_plan.run.outputs.items()))
            entry["policyViolations"] = [
                {"rule": violation.rule, "resource": violation.name, "message": violation.message}
                for violation in stack_plan.policy_violations
            ]
        stacks[stack_plan.stack] = entry
    result: dict[str, Any] = {"note": HONESTY_NOTE, "stacks": stacks, "exitCode": report.exit_code}
    if report.compared:
        result["differences"] = [difference.to_json() for difference in report.differences]
        result["violations"] = [violation.to_json() for violation in report.parity_violations]
    return result


def render_resources(report: PlanReport, verdict: list[str]) -> str:
    """`release plan --resources`: the verdict, then every resource of every stack with its key
    settings and, with --all, every difference between the stacks (knob or violation)."""
    lines = [HONESTY_NOTE, "", *verdict, ""]
    for stack_plan in report.stacks:
        lines += _render_stack(stack_plan)
    if report.compared:
        lines += _render_differences(report)
    return "\n".join(lines) + "\n"


def render_differences(report: PlanReport, verdict: list[str]) -> str:
    """The verdict, then only the differences between the stacks (and any refusal): what `release
    diff` prints."""
    lines = [HONESTY_NOTE, "", *verdict, ""]
    for stack_plan in report.stacks:
        if stack_plan.run is None:
            lines += _render_stack(stack_plan)
    return "\n".join([*lines, *_render_differences(report)]) + "\n"


def _render_stack(stack_plan: StackPlan) -> list[str]:
    lines = []
    if stack_plan.run is None:
        lines.append(f"stack {stack_plan.stack} ({stack_plan.file}): REFUSED by the program")
        lines += [f"  {line}" for line in str(stack_plan.error).splitlines()]
        return [*lines, ""]
    custom = [resource for resource in stack_plan.run.resources if resource.custom]
    lines.append(f"stack {stack_plan.stack} ({stack_plan.file}): {len(custom)} resources")
    for top, resources in grouped_by_component(stack_plan.run):
        heading = f"{short_type(top.type)} {top.name}" if top is not None else "(stack)"
        lines.append(f"  {heading}")
        for resource in resources:
            settings = "  ".join(f"{name}={value}" for name, value in key_settings(resource).items())
            lines.append(f"    {short_type(resource.type):<20} {resource.name:<22} {settings}".rstrip())
    if stack_plan.policy_violations:
        lines.append(f"  policy: {len(stack_plan.policy_violations)} VIOLATION(S) (policy/, mandatory):")
        lines += [f"    {violation.render()}" for violation in stack_plan.policy_violations]
    else:
        lines.append(f"  policy: OK, every rule of policy/ holds ({len(RULES)} rules)")
    if stack_plan.unset_secrets:
        lines.append(
            f"  note: secrets not set in {stack_plan.file} (placeholders used offline; `pulumi up` "
            f"refuses until set): {', '.join(stack_plan.unset_secrets)}"
        )
        lines.append(
            "        set each with `pulumi config set --secret --path 'appSecrets.<NAME>' "
            f"<value> -s {stack_plan.stack}`"
        )
    return [*lines, ""]


def _render_differences(report: PlanReport) -> list[str]:
    stacks = [stack_plan.stack for stack_plan in report.stacks]
    lines = [f"differences between {', '.join(stacks)}: {len(report.differences)}"]
    for difference in report.differences:
        values = "  ".join(f"{stack}={_value_text(difference.values.get(stack))}" for stack in stacks)
        verdict = "VIOLATION" if difference.is_violation else "knob     "
        lines.append(f"  {verdict} [{difference.layer}] {difference.where}  {difference.path}")
        lines.append(f"      {values}")
        lines.append(
            f"      {difference.reason}"
            if difference.is_violation
            else f"      from: {' | '.join(difference.knobs)}"
        )
    violations = report.violation_count
    if violations:
        lines.append(
            f"parity: {violations} VIOLATION(S): a difference that is not a declared per-stack knob "
            "(fix the stack file, or declare the knob in core/config/stack.py)"
        )
    else:
        lines.append("parity: OK, every difference is a declared per-stack knob")
    return lines


def _value_text(value: Any) -> str:
    if value is None:
        return "(absent)"
    text = str(value)
    return text if len(text) <= 60 else f"{text[:28]}...{text[-28:]}"
