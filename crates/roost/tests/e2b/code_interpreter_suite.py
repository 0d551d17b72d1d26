"""The official E2B code interpreter SDK (pinned) against Roost's runner.

Run by crates/roost/tests/sandboxes.rs with the same environment as sdk_suite.py; the
template (code-interpreter-v1) has python3 with IPython and matplotlib.
"""

import base64
import sys

from e2b_code_interpreter import Sandbox


def ok(name):
    print(f"ok {name}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


sbx = Sandbox.create(timeout=300)  # the SDK's default template: code-interpreter-v1
ok(f"create {sbx.sandbox_id}")

ex = sbx.run_code("1+1")
check(ex.error is None and ex.text == "2", f"1+1: {ex}")
ok("1+1 is 2")

ex = sbx.run_code("x = 40\nprint('hello')\nx + 2")
check(ex.logs.stdout == ["hello\n"] and ex.text == "42", f"stdout and result: {ex}")
ex = sbx.run_code("x * 2")
check(ex.text == "80", f"state kept between runs: {ex}")
ok("stdout, results, state")

ex = sbx.run_code("import sys; print('warn', file=sys.stderr)")
check(ex.logs.stderr == ["warn\n"], f"stderr: {ex.logs}")
ex = sbx.run_code("1/0")
check(ex.error is not None and ex.error.name == "ZeroDivisionError" and "1/0" in ex.error.traceback, f"error: {ex.error}")
ok("stderr and errors with traceback")

ex = sbx.run_code("""
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [1, 4, 9])
plt.title("squares")
plt.show()
""")
pngs = [r.png for r in ex.results if r.png]
check(ex.error is None and len(pngs) == 1, f"plot: {ex}")
check(base64.b64decode(pngs[0])[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
ok("matplotlib PNG")

ctx = sbx.create_code_context()
sbx.run_code("y = 5", context=ctx)
ex = sbx.run_code("y", context=ctx)
check(ex.text == "5", f"context: {ex}")
ex = sbx.run_code("'y' in dir()")
check(ex.text == "False", f"contexts share state: {ex}")
check(ctx.id in [c.id for c in sbx.list_code_contexts()], "context not listed")
sbx.remove_code_context(ctx)
ok("contexts")

sbx.kill()
print("all ok")
sys.exit(0)
