"""The repository modules a module imports, directly or not, found by reading their source.

`import_closure(root, name)` follows the import statements of module `name` (those inside
functions too) through every module under `root`, with the packages (`__init__.py`) each one
loads on the way. Third-party and standard-library imports are left out. Two users:
pipeline.runtime keys a task's checkpoint by the source of the code it runs (`code_digest`), and
pipeline.model.packaging ships with the model exactly the code its pyfunc file imports.

Standard library only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path


def package_root(path: Path) -> tuple[Path, str]:
    """(the folder the module's top-level package sits in, the module's dotted name)."""
    parts = [] if path.name == "__init__.py" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, ".".join(parts)


def import_closure(root: Path, name: str) -> dict[Path, bytes]:
    """The source of module `name` and of every module under `root` it imports, transitively,
    with the packages (`__init__.py`) each of them loads on the way, by file."""
    sources: dict[Path, bytes] = {}
    seen: set[str] = set()
    todo = [name]
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):  # a.b.c imports a and a.b first
            module = ".".join(parts[:i])
            if module in seen:
                continue
            seen.add(module)
            path = _module_file(root, module)
            if path is not None:
                sources[path] = path.read_bytes()
                todo += _imported_names(sources[path], module, path.name == "__init__.py")
    return sources


def _module_file(root: Path, module: str) -> Path | None:
    """The file of `module` under `root`, None when it is not there (stdlib, third party, or an
    attribute such as a function imported from a module)."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache  # by source: the tasks share most of their modules
def _imported_names(source: bytes, module: str, is_package: bool) -> tuple[str, ...]:
    """Every module name an import statement of `module` may refer to: `import a.b` → a.b;
    `from a import b` → a and a.b (b may be a module or a name in a); relative imports
    resolved against `module`'s package. A module that does not parse imports nothing (the
    task fails on it when it imports it)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    names: list[str] = []
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > len(package):
                continue  # above the top-level package: fails when run, imports nothing
            base_parts = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
            if base:
                names.append(base)
                names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return tuple(names)


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of `body`, nested ones too (in functions, classes, if/try/with/for...),
    without visiting expressions: an import is a statement (ast.walk costs ~3x more)."""
    for node in body:
        yield node
        for field_ in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(node, field_, ()):
                yield from _statements([child] if isinstance(child, ast.stmt) else child.body)
