#!/usr/bin/env bash
# `npm test`: type-check, lint, then every vitest project (unit, infra, integration, e2e).
# Integration and e2e tests need Kamailio and the project's database instances: run
# `sudo npm run setup` once on a fresh machine (the global setup starts the databases each run).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
echo "== type-check"; npx tsc -p tsconfig.json
echo "== lint"; npx biome check .
echo "== tests"; npx vitest run "$@"
echo "== npm test took $(( $(date +%s) - start )) s"
