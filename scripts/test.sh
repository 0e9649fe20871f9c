#!/bin/sh
# Every check CI runs: types, lint, generated code current, then all tests
# (unit, the agent standalone on the host, and real VMs).
set -eu
cd "$(dirname "$0")/.."

echo "test: typecheck"
npx tsc -p tsconfig.json --noEmit
echo "test: lint"
npm run -s lint
if command -v protoc >/dev/null && [ -d .git ]; then
  echo "test: generated proto code is current"
  scripts/gen-proto.sh
  git diff --exit-code --stat proto/generated
fi
echo "test: vitest"
npx vitest run "$@"
