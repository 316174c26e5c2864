"""The MLproject entry points' launcher: ``python -m pipeline.mlproject <module> {overrides}``.

`mlflow run . -e <task> -P overrides='...'` puts the `overrides` parameter into the entry point's
command as one shell-quoted word (MLflow applies ``shlex.quote``). This splits that word the way a
shell splits a command line (quotes group, backslashes escape; nothing is expanded or run) and
runs ``python -m <module>`` with the pieces, so ``-P overrides='registry.reason="a b" x=1'`` gives
the task the same arguments as typing ``python -m <module> registry.reason="a b" x=1``:
``registry.reason=a b`` and ``x=1``. Unbalanced quotes end in one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from typing import NoReturn

USAGE = "usage: python -m pipeline.mlproject <module> [overrides]"


def split_overrides(words: list[str]) -> list[str]:
    """Each word split as a shell splits a command line, in order; ValueError on bad quoting."""
    pieces: list[str] = []
    for word in words:
        try:
            pieces += shlex.split(word)
        except ValueError as exc:  # shlex: "No closing quotation" / "No escaped character"
            raise ValueError(
                f"overrides {word!r}: {str(exc).lower()}; quote a value with spaces as "
                'key="a b" inside the parameter'
            ) from None
    return pieces


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package, an empty or relative name
        return False


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Replace this process with ``python -m <module> <split overrides>`` (same pid, so the
    task's exit code is the entry point's)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or not _is_module(argv[0]):
        _fail(f"no module named {argv[0]!r}; {USAGE}" if argv else USAGE)
    module, *words = argv
    try:
        args = split_overrides(words)
    except ValueError as exc:
        _fail(str(exc))
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


if __name__ == "__main__":
    main()
