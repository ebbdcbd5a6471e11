#!/usr/bin/env bash
# Commit Pulumi.<stack>.yaml after a release: the digests and color the release set are what the next
# `pulumi preview` in a pull request compares against. [skip ci] keeps the commit from releasing again.
# The checkout keeps no credentials: pull and push authenticate with $GITHUB_TOKEN for that command only
# (git-with-token.sh).
set -euo pipefail
stack="$1"
file="Pulumi.${stack}.yaml"
if git diff --quiet -- "${file}"; then
  echo "${file}: unchanged"
  exit 0
fi
git config user.name "release-bot"
git config user.email "release-bot@users.noreply.example.test"
git add "${file}"
git commit -m "release: ${stack} config after run ${GITHUB_RUN_ID:-local} [skip ci]"
here="$(dirname "$0")"
"${here}/git-with-token.sh" pull --rebase
"${here}/git-with-token.sh" push
