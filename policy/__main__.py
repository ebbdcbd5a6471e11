"""The CrossGuard policy pack: `pulumi preview --policy-pack policy` runs the platform's rules, mandatory.

Constructing the PolicyPack starts a gRPC server and waits for the engine, so only the CLI runs this
file; the rules themselves are plain functions in platform_policies.py, unit-tested in tests/.
"""

import sys
from collections.abc import Callable
from pathlib import Path

# The policy runtime runs this file from policy/; the rules import the repository's `core` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from platform_policies import RULES, Rule
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)


def _validation(rule: Rule) -> "Callable[[ResourceValidationArgs, ReportViolation], None]":
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        rule.check(args, report_violation)

    return validate


PolicyPack(
    name="platform-policies",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(name=rule.name, description=rule.description, validate=_validation(rule))
        for rule in RULES
    ],
)
