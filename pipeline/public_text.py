"""Error text fit to show outside the machine (service error bodies, incidents, alerts, refusals):
one line; a Python traceback cut to its last line (the exception); XGBoost's native stack trace
and source location dropped; each absolute path cut to its last part
(/home/me/registry/mlflow.db → …/mlflow.db). The full text belongs in the server's log.

Standard library only: the service imports it at start-up."""

from __future__ import annotations

import re

PYTHON_TRACEBACK = "Traceback (most recent call last):"
# XGBoost's "Stack trace:" and its frames "[bt] (0) /path/libxgboost.so(+0x11031e) [0x7f5e2f91031e]",
# which end its message: up to the next "; " (what a caller appended) or the end. Not frame by
# frame: a message cut to a length before it gets here may end inside a frame ("... [bt] (2) /pa")
NATIVE_STACK_TRACE = re.compile(r"\s*Stack trace:[^;]*")
# XGBoost's "[12:00:00] /its/source/file.cc:123: " before the message
NATIVE_LOCATION = re.compile(r"\[\d\d:\d\d:\d\d\] [^\s:]+:\d+: ")
# an absolute path: at the start, after a space, quote or bracket, or in a sqlite:/// or file://
# URI; not a route after an HTTP method ("GET /readyz")
ABSOLUTE_PATH = re.compile(
    r"(?:^|(?<=[\s'\"(\[=,])|(?<=sqlite:///)|(?<=file://))(?<!GET )(?<!POST )"
    r"(?:/[^\s'\"()\[\],;:]+)+/?"
)

# "sqlite:///home/me/mlflow.db" (a path after the three slashes without a leading slash of its own)
SQLITE_PATH = re.compile(r"(?<=sqlite:///)(?!/)(?:[^\s'\"()\[\],;:/]+/)+([^\s'\"()\[\],;:/]*)")


CREDENTIALS = re.compile(r"//[^/@]*@")  # "user:password@" after a URI's scheme


def without_credentials(uri: object) -> str:
    """`uri` with any user:password@ masked (postgresql://me:secret@host → postgresql://***@host):
    registry and store URIs as messages show them."""
    return CREDENTIALS.sub("//***@", str(uri))


def public_text(text: object, limit: int | None = None) -> str:
    """`text` as described in the module docstring; at most `limit` characters (… at the end)."""
    text = str(text)
    head, traceback, trace = text.partition(PYTHON_TRACEBACK)
    if traceback:
        text = " ".join([head, *[line for line in trace.splitlines() if line.strip()][-1:]])
    text = NATIVE_LOCATION.sub("", NATIVE_STACK_TRACE.sub("", text))
    text = SQLITE_PATH.sub(lambda m: "…/" + m[1], text)
    text = ABSOLUTE_PATH.sub(lambda m: "…/" + m.group().rstrip("/").rsplit("/", 1)[-1], text)
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
