"""The layers of `portal/` go one way, checked on the import graph (function-level imports included).

Layers, top to bottom. A module imports from its own layer or from the layers below it, never
from above; the graph has no cycle; and `delivery/` (the workers, run by the CLI) is imported by
views and by itself only, never by the domain nor by the modules the domain calls.

    1  views and entry points   the app factory (portal/__init__.py, which may import anything),
                                admin/, client/, api/, webhooks, cli, cli_webhooks, errors and problems
                                (the API's errors), health, headers, fragments, read_only,
                                transaction, forms (view forms), demo (run by `flask demo
                                load`), devserver (`make run`), embed (the portal mounted in a
                                host app)
    2  domain services          quotes, quote_requests, quote_expiry (reminders and expiry),
                                billing, credits (the prepaid ledger), monthly, receivables,
                                payments, accounts, submissions, search
    3  under the domain         outbox (emails as rows in the caller's transaction), events
                                (webhook events, likewise), representations (the JSON of objects
                                for the API and events), webhook_endpoints, audit,
                                audit_sentences (the audit trail told in sentences),
                                auth (passwords, one-time links), api_keys, documents (PDF, Factur-X),
                                facturx_xml (the invoices' CII XML), delivery/ (email rendering,
                                SMTP and file transports, the worker)
    4  leaf helpers             money, dates, seller (identity and CGV in force), labels,
                                validation, security, network (addresses webhooks may reach)
    5  models                   models, schema_guards
    6  foundations              exceptions, i18n, extensions, config, database

`exceptions` sits at the bottom with `i18n` because the schema guards (layer 5) raise named
domain exceptions.

No module is longer than 450 lines unless its docstring says why, in a paragraph that starts
"One module on purpose".

One cycle pattern is allowed: a package's view modules importing a name (`blueprint`) from the
package's own `__init__`, which imports them to register their routes — an import of an ancestor
package is left out of the cycle search (not out of the layer check).
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "portal"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("views and entry points", (
        "portal", "portal.admin", "portal.admin.*", "portal.client", "portal.client.*",
        "portal.api", "portal.api.*", "portal.webhooks", "portal.cli", "portal.cli_webhooks", "portal.errors",
        "portal.problems",
        "portal.health", "portal.headers", "portal.fragments", "portal.read_only",
        "portal.transaction", "portal.forms", "portal.demo", "portal.devserver", "portal.embed",
    )),
    ("domain services", (
        "portal.quotes", "portal.quote_requests", "portal.quote_expiry", "portal.billing",
        "portal.credits", "portal.monthly", "portal.receivables", "portal.payments", "portal.accounts",
        "portal.submissions", "portal.search", "portal.lifecycle", "portal.monthly_outlook",
    )),
    ("under the domain", (
        "portal.outbox", "portal.events", "portal.representations", "portal.webhook_endpoints",
        "portal.audit", "portal.audit_sentences", "portal.auth", "portal.api_keys", "portal.documents",
        "portal.facturx_xml", "portal.delivery", "portal.delivery.*",
    )),
    ("leaf helpers", (
        "portal.money", "portal.dates", "portal.seller", "portal.labels", "portal.validation",
        "portal.security", "portal.network",
    )),
    ("models", ("portal.models", "portal.schema_guards")),
    ("foundations", (
        "portal.exceptions", "portal.i18n", "portal.extensions", "portal.config", "portal.database",
    )),
)
# Imported by views (the CLI runs the worker, the back office previews an email) and by itself only.
VIEWS_ONLY = ("portal.delivery", "portal.delivery.*")
MAX_LINES = 450
# How a longer module's docstring begins the paragraph that says why it stays one module.
LONG_MODULE_REASON = "One module on purpose"


# --- The import graph -------------------------------------------------------------------------


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """`portal/admin/base.py` → `portal.admin.base`; a package's `__init__.py` names the package."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def find_modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every Python module of the package, by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports_of(module: str, source: str, modules: Iterable[str], *, is_package: bool) -> set[str]:
    """The package's modules that `module` imports, wherever the import stands (module level,
    function, `if TYPE_CHECKING`); `from . import x` names the module `x` when there is one."""
    modules = set(modules)
    own_package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(_known_prefix(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own_package.rsplit(".", node.level - 1)[0] if node.level > 1 else own_package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else _known_prefix(target, modules))
    found.discard(None)
    found.discard(module)
    return found


def _known_prefix(name: str, modules: set[str]) -> str | None:
    """The longest of `modules` that `name` is or lies inside (None for other packages)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = find_modules(root)
    return {name: imports_of(name, path.read_text(encoding="utf-8"), modules,
                             is_package=path.name == "__init__.py")
            for name, path in modules.items()}


def is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def find_knots(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly connected
    components of two modules or more), leaving out the imports of a module's own ancestor packages."""
    edges = _edges(graph)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def _edges(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    return {node: sorted(t for t in targets if t in graph and not is_ancestor(t, node))
            for node, targets in graph.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle, written out, through each group of modules that import each other."""
    edges = _edges(graph)
    return [_cycle_through(group, edges) for group in find_knots(graph)]


def _cycle_through(group: list[str], edges: dict[str, list[str]]) -> list[str]:
    """The shortest way from the group's first module back to itself (breadth first)."""
    start, members = group[0], set(group)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in edges[node]:
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if target in members and target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    return group


def long_modules_without_reason(modules: dict[str, Path]) -> list[str]:
    """The modules longer than MAX_LINES whose docstring does not say why they stay one module."""
    unexplained = []
    for module, path in sorted(modules.items()):
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        docstring = " ".join((ast.get_docstring(ast.parse(source)) or "").split())
        if lines > MAX_LINES and LONG_MODULE_REASON not in docstring:
            unexplained.append(f"{module}: {lines} lines")
    return unexplained


def layer_of(module: str) -> int | None:
    """1 (views) to 6 (foundations); None when no layer names the module."""
    matches = [number for number, (_name, patterns) in enumerate(LAYERS, start=1)
               if any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns)]
    return matches[0] if len(matches) == 1 else None


def _matches(module: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns)


# --- The rules --------------------------------------------------------------------------------


def test_every_module_of_the_package_is_in_exactly_one_layer():
    placed = {module: [name for name, patterns in LAYERS if _matches(module, patterns)]
              for module in find_modules()}
    unplaced = sorted(module for module, layers in placed.items() if not layers)
    doubled = {module: layers for module, layers in placed.items() if len(layers) > 1}
    assert not unplaced, f"put these modules in a layer of tests/test_architecture.py: {unplaced}"
    assert not doubled, f"modules in more than one layer: {doubled}"


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    cycles = [f"{' → '.join(cycle)}   (a knot of {', '.join(knot)})"
              for cycle, knot in zip(find_cycles(graph), find_knots(graph), strict=True)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_import_goes_up_a_layer():
    upward = []
    for module, targets in sorted(import_graph().items()):
        for target in sorted(targets):
            if module == "portal" or None in (layer_of(module), layer_of(target)):
                continue  # the app factory wires everything; unplaced modules fail the test above
            if layer_of(target) < layer_of(module):
                upward.append(f"{module} (layer {layer_of(module)}) imports {target} "
                              f"(layer {layer_of(target)}: {LAYERS[layer_of(target) - 1][0]})")
    assert not upward, "imports going up:\n" + "\n".join(upward)


def test_no_module_is_longer_than_450_lines_without_saying_why():
    unexplained = long_modules_without_reason(find_modules())
    assert not unexplained, (f"split these modules, or start a paragraph of their docstring with "
                             f"\"{LONG_MODULE_REASON}\" and say why:\n" + "\n".join(unexplained))


def test_only_views_import_the_delivery_workers():
    wrong = [f"{module} imports {target}"
             for module, targets in sorted(import_graph().items()) for target in sorted(targets)
             if _matches(target, VIEWS_ONLY) and layer_of(module) != 1
             and not _matches(module, VIEWS_ONLY)]
    assert not wrong, "only views and the CLI may import delivery/:\n" + "\n".join(wrong)


# --- The checker itself -----------------------------------------------------------------------


def test_the_graph_reads_relative_absolute_and_function_level_imports():
    modules = {"portal", "portal.a", "portal.b", "portal.c", "portal.d", "portal.pkg", "portal.pkg.views"}
    source = (
        "from . import a, helper_name\n"
        "import portal.b.something\n"
        "def later():\n"
        "    from .c import thing\n"
        "    from portal import d\n"
        "import flask\n"
    )
    assert imports_of("portal.x", source, modules, is_package=False) == {
        "portal.a", "portal.b", "portal.c", "portal.d", "portal"}
    views = "from . import blueprint\nfrom .. import a\n"
    assert imports_of("portal.pkg.views", views, modules, is_package=False) == {"portal.pkg", "portal.a"}
    init = "def register():\n    from . import views\n"
    assert imports_of("portal.pkg", init, modules, is_package=True) == {"portal.pkg.views"}


def test_the_cycle_search_names_the_cycle_and_allows_a_package_and_its_views():
    graph = {"portal.a": {"portal.b"}, "portal.b": {"portal.c"}, "portal.c": {"portal.a"},
             "portal.pkg": {"portal.pkg.views"}, "portal.pkg.views": {"portal.pkg"}}
    assert find_cycles(graph) == [["portal.a", "portal.b", "portal.c", "portal.a"]]


def test_the_length_check_counts_lines_and_reads_the_reason_in_the_docstring(tmp_path):
    body = "x = 1\n" * MAX_LINES
    files = {"portal.short": '"""Short."""\n' + "x = 1\n" * (MAX_LINES - 1),
             "portal.long": '"""Long."""\n' + body,
             "portal.explained": f'"""Long.\n\n{LONG_MODULE_REASON}, because.\n"""\n' + body,
             "portal.reason_in_code": f'"""Long."""\n# {LONG_MODULE_REASON}\n' + body}
    for module, source in files.items():
        (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    modules = {module: tmp_path / f"{module}.py" for module in files}
    assert long_modules_without_reason(modules) == [
        f"portal.long: {MAX_LINES + 1} lines", f"portal.reason_in_code: {MAX_LINES + 2} lines"]
