"""The import graph of lib/, pages/ and app.py: no cycle, layers one way, pages kept thin.

Read from the source with `ast` (every import that runs, function-level ones included;
`if TYPE_CHECKING:` imports name types only and never run). docs/architecture.md explains
the layers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The layers, bottom first: a module may import its own layer and those below, never above.
# A module belongs to the longest name listed that it is or is inside of.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lib.secret", "lib.config", "lib.kucoin.constants", "lib.account_fields"),  # facts, config
    ("lib.kucoin",),  # the KuCoin client, and the simulator that stands in for KuCoin
    ("lib.store", "lib.vault"),  # the only way into the database; the master key
    ("lib.health",),  # the rules
    ("lib.console",),  # the services
    (
        "lib.ui",
        "lib.web_guard",
        "lib.web_session",
        "lib.session_cookie",
        "lib.cli",
        "lib.__main__",
    ),  # faces
    ("pages", "app"),  # the page scripts and the frame that serves them
)
# What a page may import from this project: the ui package and the services (errors included).
PAGE_MAY_IMPORT = ("lib.ui", "lib.console")
# Never in a page: the ORM and the store's models, the vault, request signing.
PAGE_MUST_NOT_IMPORT = (
    "sqlmodel",
    "sqlalchemy",
    "cryptography",
    "lib.store",
    "lib.vault",
    "lib.kucoin.auth",
)


def module_name(path: Path) -> str:
    """Return the dotted module name of a source file ("lib/ui/__init__.py" -> "lib.ui")."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    """Return every module of lib/, pages/ and app.py by name."""
    files = [*ROOT.glob("lib/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]
    return {module_name(path): path for path in files}


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Yield the imports that run: everywhere but inside `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (i for n in node.orelse for i in _runtime_imports(n))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def imported(tree: ast.AST, known: set[str]) -> set[str]:
    """Return what a module imports: our modules by name, and other top-level packages."""
    found: set[str] = set()
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:  # `from a.b import c` imports a.b.c when that is a module, else a name of a.b
            base = node.module or ""
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for name in names:
            while name not in known and "." in name and name.split(".")[0] in ("lib", "pages"):
                name = name.rsplit(".", 1)[0]
            found.add(name if name in known else name.split(".")[0])
    return found


def import_graph() -> dict[str, set[str]]:
    """Return, per module of ours, the modules of ours it imports when it runs."""
    modules = sources()
    known = set(modules)
    return {
        name: {m for m in imported(ast.parse(path.read_text()), known) if m in known}
        for name, path in modules.items()
    }


def external_imports() -> dict[str, set[str]]:
    """Return, per module of ours, the top-level packages it imports that are not ours."""
    modules = sources()
    known = set(modules)
    return {
        name: {m for m in imported(ast.parse(path.read_text()), known) if m not in known}
        for name, path in modules.items()
    }


def layer_of(module: str) -> int | None:
    """Return the layer a module belongs to (its longest listed prefix), None if unlisted."""
    if module == "lib":  # the package's own docstring, which imports nothing
        return 0
    matches = [
        (len(prefix), layer)
        for layer, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """Return one import cycle as the modules along it (first repeated last), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for target in sorted(graph.get(module, ())):
            if target != module and (cycle := visit(target, [*path, module])):
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        if cycle := visit(module, []):
            return cycle
    return None


def upward_imports(graph: Mapping[str, set[str]]) -> list[str]:
    """Return every import of a module from a layer above its own."""
    return [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target) is not None
        and layer_of(module) is not None
        and layer_of(target) > layer_of(module)
    ]


# --- The project's graph -----------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    assert [m for m in sorted(sources()) if layer_of(m) is None] == []


def test_there_is_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


def test_no_layer_imports_a_layer_above_it() -> None:
    assert upward_imports(import_graph()) == []


def test_pages_import_only_the_ui_the_services_and_their_errors() -> None:
    graph, external = import_graph(), external_imports()
    pages = [m for m in sources() if layer_of(m) == len(LAYERS) - 1]
    wrong = {
        page: sorted(
            target
            for target in graph[page] | external[page]
            if (target.startswith("lib") and not target.startswith(PAGE_MAY_IMPORT))
            or target.startswith(PAGE_MUST_NOT_IMPORT)
        )
        for page in pages
    }
    assert {page: found for page, found in wrong.items() if found} == {}
    assert "lib.console.errors" in set().union(*(graph[p] for p in pages))


# --- The checks themselves catch what they are for -------------------------------------------


def test_a_cycle_is_found_however_deep() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize(
    ("module", "target", "upward"),
    [
        ("lib.store", "lib.health.status", True),  # storage asking the rules
        ("lib.health.fleet", "lib.console.fleet", True),  # rules asking a service
        ("lib.console.binding", "lib.ui.session", True),  # a service drawing on Streamlit
        ("lib.kucoin.probe", "lib.store", True),  # the client writing to the database
        ("lib.cli.check", "lib.health.assessment", False),
        ("pages.fleet", "lib.ui", False),
    ],
)
def test_an_import_from_a_layer_above_is_named(module: str, target: str, upward: bool) -> None:
    assert upward_imports({module: {target}}) == (
        [f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"]
        if upward
        else []
    )


def test_an_import_inside_a_function_counts_and_a_type_only_one_does_not() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from lib.console import Console\n"
        "def fleet():\n"
        "    from lib.console.fleet import fleet_table\n"
    )
    known = {"lib.console", "lib.console.fleet"}
    assert imported(ast.parse(source), known) == {"typing", "lib.console.fleet"}
