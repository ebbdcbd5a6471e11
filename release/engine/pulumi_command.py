"""`CancellablePulumiCommand`: the Pulumi CLI as the Automation API runs it, except that an interrupt
cancels the running command (release.engine.cancel) instead of waiting for it to finish.

Passed to `LocalWorkspace(pulumi_command=...)`, the SDK's own way to run commands differently. It
keeps `PulumiCommand.run`'s contract as pulumi 3.272 implements it (automation/_cmd.py): the same
arguments (`--non-interactive` first, before any `--`), environment (`PULUMI_AUTOMATION_API=true`;
the command's directory first on PATH when it is an absolute path), output callbacks, result, and
error classification (`create_command_error`). Re-check it against `_cmd.py` when the SDK changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pulumi.automation import CommandResult, PulumiCommand
from pulumi.automation.errors import create_command_error

from release.engine.cancel import OnLine, run_cancellable


class CancellablePulumiCommand(PulumiCommand):
    """`PulumiCommand` (constructing it runs `pulumi version`) whose commands an interrupt cancels."""

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: OnLine | None = None,
        on_error: OnLine | None = None,
    ) -> CommandResult:
        separator = args.index("--") if "--" in args else len(args)
        if "--non-interactive" not in args[:separator]:
            args.insert(0, "--non-interactive")  # fail rather than prompt, as the SDK does
        env = {**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"}
        if os.path.isabs(self.command):
            env["PATH"] = os.pathsep.join([os.path.dirname(self.command), env.get("PATH", "")])
        code, stdout, stderr = run_cancellable([self.command, *args], cwd, env, on_output, on_error)
        result = CommandResult(stdout=stdout, stderr=stderr, code=code)
        if code != 0:
            raise create_command_error(result)
        return result
