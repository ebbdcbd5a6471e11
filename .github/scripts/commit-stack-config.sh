#!/usr/bin/env bash
# Commit Pulumi.<stack>.yaml after a release: the digests and colour the release set are what the next
# `pulumi preview` in a pull request compares against. [skip ci] keeps the commit from releasing again.
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
git pull --rebase
git push
