#!/usr/bin/env bash
# install.sh — installs the official OpenAI clients that tests/npm/clients_test.mjs drives, at
# the versions package-lock.json pins, into tests/npm/node_modules (git-ignored) with `npm ci`,
# unless that lockfile is installed there already. scripts/install-deps.sh runs it once before
# the tests; ctest runs it as the npm_clients fixture, so a changed lockfile is installed anew.
# Exits 77 (skip) only when node or npm is missing; a failed install fails (exit 1).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "skip: node and npm are needed (scripts/install-deps.sh installs them)"
    exit 77
fi
stamp=node_modules/.kb-package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "tests/npm: the clients of this package-lock.json are installed"
    exit 0
fi
if ! npm ci --no-audit --no-fund --loglevel=error; then
    echo "FAIL: npm ci in tests/npm failed (is the npm registry reachable?)"
    exit 1
fi
echo "$want" > "$stamp"
echo "tests/npm: installed $(node -p 'Object.entries(require("./package.json").dependencies).map(([n, v]) => n + "@" + v).join(" ")')"
