#!/usr/bin/env bash
# The whole suite: Rust unit and integration tests (against SQLite and a real
# PostgreSQL server started here) and the console's tests. `make test` runs this after
# installing what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export ROOST_TEST_POSTGRES
ROOST_TEST_POSTGRES=$(scripts/test-postgres.sh start)
trap 'scripts/test-postgres.sh stop' EXIT
echo "==> PostgreSQL for the store suite: $ROOST_TEST_POSTGRES"

echo "==> console tests"
(cd web && npm test --silent)

echo "==> Rust tests"
mkdir -p target
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
set -e

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' target/test-output.txt
exit "$status"
