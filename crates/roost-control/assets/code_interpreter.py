"""Roost's code interpreter runner: one IPython shell per context, driven over stdin/stdout.

Roost copies this file into a sandbox and starts it with `python3 -u` through the
driver's exec. Each request is one JSON line on stdin: {"code": ..., "env_vars": {...}}.
Each reply is JSON lines on stdout in the shape the E2B code interpreter SDK parses
(`stdout`, `stderr`, `result`, `error`, `number_of_executions`), ended by
{"type": "end_of_execution"}. The last expression's value is a result with its text
(and richer formats IPython knows); open matplotlib figures become PNG results.
"""

import base64
import datetime
import io
import json
import os
import sys
import traceback

os.environ.setdefault("MPLBACKEND", "Agg")

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

_out = os.fdopen(os.dup(1), "w", buffering=1)
sys.stdin = os.fdopen(os.dup(0), "r")


def emit(message):
    _out.write(json.dumps(message) + "\n")
    _out.flush()


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class Stream(io.TextIOBase):
    """Sends output a line at a time (print writes the text and its newline apart)."""

    def __init__(self, kind):
        self.kind = kind
        self.pending = ""

    def writable(self):
        return True

    def write(self, text):
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            emit({"type": self.kind, "text": line + "\n", "timestamp": now()})
        return len(text)

    def flush(self):
        if self.pending:
            emit({"type": self.kind, "text": self.pending, "timestamp": now()})
            self.pending = ""


shell = InteractiveShell.instance()
# Results and tracebacks are reported as messages, not printed.
shell.displayhook.write_output_prompt = lambda: None
shell.displayhook.write_format_data = lambda *a, **k: None
shell.showtraceback = lambda *a, **k: None
shell.showsyntaxerror = lambda *a, **k: None
executions = 0

FORMATS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}


def result_of(value, main):
    data, _ = shell.display_formatter.format(value)
    out = {"type": "result", "is_main_result": main}
    for mime, key in FORMATS.items():
        if mime in data:
            out[key] = data[mime]
    return out


def figures():
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in plt.get_fignums():
        fig = plt.figure(num)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        emit({"type": "result", "is_main_result": False, "text": repr(fig),
              "png": base64.b64encode(buf.getvalue()).decode()})
    plt.close("all")


for line in sys.stdin:
    try:
        request = json.loads(line)
    except ValueError:
        continue
    for key, value in (request.get("env_vars") or {}).items():
        os.environ[key] = value
    executions += 1
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Stream("stdout"), Stream("stderr")
    try:
        result = shell.run_cell(request.get("code", ""), store_history=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = saved
    error = result.error_before_exec or result.error_in_exec
    try:
        figures()
    except Exception:  # a broken figure must not hide the cell's own outcome
        pass
    if error is not None:
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        emit({"type": "error", "name": type(error).__name__, "value": str(error), "traceback": tb})
    elif result.result is not None:
        emit(result_of(result.result, True))
    emit({"type": "number_of_executions", "execution_count": executions})
    emit({"type": "end_of_execution"})
