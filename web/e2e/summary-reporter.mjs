// Prints the one line scripts/test.sh sums: "e2e: N passed, M failed". A test that did
// not pass (failed, timed out, interrupted, or skipped: nothing skips silently) is a
// failure, and so is an error outside the tests (a missing prerequisite in the setup).
export default class SummaryReporter {
  passed = 0;
  failed = 0;
  errors = 0;

  onTestEnd(test, result) {
    // Only the final attempt counts (there are no retries).
    if (result.retry < test.retries) return;
    if (result.status === "passed") this.passed++;
    else this.failed++;
  }

  onError(error) {
    this.errors++;
    console.log(`[e2e] FAIL outside a test: ${error.message ?? error.value ?? error}`);
  }

  onEnd(result) {
    const failed = this.failed + this.errors + (this.passed + this.failed === 0 && this.errors === 0 ? 1 : 0);
    if (result.status !== "passed" && failed === 0) {
      console.log(`[e2e] the run ended ${result.status}`);
      console.log(`e2e: ${this.passed} passed, 1 failed`);
      return;
    }
    console.log(`e2e: ${this.passed} passed, ${failed} failed`);
  }

  printsToStdio() {
    return false;
  }
}
