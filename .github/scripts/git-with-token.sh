#!/usr/bin/env bash
# Run git with the job's token for this one command: the checkout keeps no credentials
# (`persist-credentials: false`), so the token never lands in .git/config, where every later step (and an
# uploaded artifact) could read it. GIT_CONFIG_* passes the header through the environment of this
# process alone, never on a command line. Needs GITHUB_TOKEN in the step's env.
set -euo pipefail
: "${GITHUB_TOKEN:?git-with-token.sh: set GITHUB_TOKEN: \${{ github.token }} in the step's env}"
server="${GITHUB_SERVER_URL:-https://github.com}"
basic="$(printf 'x-access-token:%s' "${GITHUB_TOKEN}" | base64 | tr -d '\n')"
export GIT_CONFIG_COUNT=1
export GIT_CONFIG_KEY_0="http.${server}/.extraheader"
export GIT_CONFIG_VALUE_0="AUTHORIZATION: basic ${basic}"
exec git "$@"
