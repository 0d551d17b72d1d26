#!/usr/bin/env bash
# The whole suite: Rust unit and integration tests (against SQLite and a real
# PostgreSQL server started here), the console's unit tests, and the console's
# end-to-end tests (chromium against the real roost binary and real instances).
# `make test` runs this after installing what is missing and building web/dist.
set -euo pipefail
cd "$(dirname "$0")/.."

export ROOST_TEST_POSTGRES
ROOST_TEST_POSTGRES=$(scripts/test-postgres.sh start)
trap 'scripts/test-postgres.sh stop' EXIT
echo "==> PostgreSQL for the store suite: $ROOST_TEST_POSTGRES"

echo "==> console tests"
(cd web && npm test --silent)

echo "==> Rust tests: built once, then run in two lanes at once"
mkdir -p target
cargo test --workspace --no-run

# The sandbox suites (real sandboxes driven by the E2B SDKs) are the longest and mostly
# wait on containers and SDK processes, so they run beside every other suite rather
# than after it. Each lane runs its test binaries one after another, as cargo does.
# Both select from the whole workspace, so they share the build above (selecting
# packages instead would resolve other features and build again).
sandbox_suites=()
other_suites=(--lib --bins)
for f in crates/*/tests/*.rs; do
    name=$(basename "$f" .rs)
    case $name in
        sandbox*) sandbox_suites+=(--test "$name") ;;
        *) other_suites+=(--test "$name") ;;
    esac
done
set +e
cargo test --workspace --no-fail-fast "${sandbox_suites[@]}" > target/test-output-sandboxes.txt 2>&1 &
sandbox_lane=$!
cargo test --workspace --no-fail-fast "${other_suites[@]}" 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
wait "$sandbox_lane"
sandbox_status=$?
set -e
echo "==> the sandbox lane"
cat target/test-output-sandboxes.txt
if [ "$status" -eq 0 ]; then status=$sandbox_status; fi

# The console in a real browser (@playwright/test driving Debian's chromium), against
# target/debug/roost (built by cargo test above); run.mjs prints the "e2e: " line.
echo "==> console end-to-end tests"
set +e
node web/e2e/run.mjs 2>&1 | tee target/e2e-output.txt
e2e_status=${PIPESTATUS[0]}
set -e

grep -qE '^e2e: ' target/e2e-output.txt || echo "e2e: 0 passed, 1 failed (the run did not finish)" >> target/e2e-output.txt

# One closing line for the whole run, summed over every test binary and the e2e run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     /^e2e: [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' target/test-output.txt target/test-output-sandboxes.txt target/e2e-output.txt
if [ "$status" -ne 0 ]; then exit "$status"; fi
exit "$e2e_status"
