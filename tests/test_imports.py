"""The imports of src/tidings go one way: the layering contracts hold, and nothing cycles.

The contracts live in pyproject.toml ([tool.importlinter]); this runs them as `make test`
does. The cycle check is separate because the layers contract lets modules of one layer
import each other (the domains do), so it cannot see two such modules importing each
other. Imports under ``if TYPE_CHECKING:`` are left out of both: they never run.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Mapping, Set
from pathlib import Path

import grimp

import tidings

ROOT = Path(__file__).resolve().parents[1]
# The venv's own binary: the import-linter pinned in requirements/constraints.txt.
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

Imports = Mapping[str, Set[str]]  # module -> the modules it imports directly


def test_the_package_under_test_is_this_checkout() -> None:
    # Both checks read the installed `tidings`; an install from elsewhere would make
    # them judge someone else's code.
    assert Path(tidings.__file__).resolve().is_relative_to(ROOT / "src")


def test_the_layering_contracts_hold() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"import-linter says:\n{result.stdout}{result.stderr}"


def test_every_package_and_module_of_tidings_has_a_layer() -> None:
    # A new domain left out of the contract would be bound by no rule at all.
    with (ROOT / "pyproject.toml").open("rb") as file:
        contracts = tomllib.load(file)["tool"]["importlinter"]["contracts"]
    named = {name.strip() for contract in contracts for layer in contract["layers"]
             for name in layer.replace(":", "|").split("|")}
    top_level = {path.stem for path in (ROOT / "src" / "tidings").iterdir()
                 if (path.is_dir() and (path / "__init__.py").exists())
                 or (path.suffix == ".py" and path.stem != "__init__")}
    assert top_level - named == set(), "not in any layer of [tool.importlinter]"


def test_no_module_of_tidings_is_in_an_import_cycle() -> None:
    graph = grimp.build_graph("tidings", exclude_type_checking_imports=True, cache_dir=None)
    cycles = import_cycles(direct_imports(graph))
    assert not cycles, "import cycles, each a set of modules that import one another:\n" + (
        "\n".join("  " + ", ".join(cycle) for cycle in cycles))


def test_the_cycle_finder_reports_exactly_the_cycles_of_a_graph() -> None:
    # a -> b -> c -> a is a cycle; d only leads into it, f is only led to, e imports itself.
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"),
                               ("p.d", "p.a"), ("p.c", "p.f"), ("p.e", "p.e")]:
        graph.add_import(importer=importer, imported=imported)

    assert import_cycles(direct_imports(graph)) == [["p.a", "p.b", "p.c"], ["p.e"]]


def test_the_cycle_finder_finds_none_where_the_imports_go_one_way() -> None:
    # A diamond: two paths from a to d, yet nothing leads back.
    imports = {"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}
    assert import_cycles(imports) == []


def direct_imports(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Each module of ``graph`` with the modules it imports directly."""
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}


def import_cycles(imports: Imports) -> list[list[str]]:
    """The cycles of ``imports``: each set of modules that reach one another through
    imports (a strongly connected component of more than one module), and each module
    that imports itself. Sorted, so a report reads the same from run to run.
    """
    reachable = {module: _reachable_from(module, imports) for module in imports}
    cycles = {
        frozenset(other for other in reachable[module]
                  if module in reachable.get(other, set()))
        for module in imports if module in reachable[module]
    }
    return sorted(sorted(cycle) for cycle in cycles)


def _reachable_from(start: str, imports: Imports) -> set[str]:
    """The modules ``start`` imports, directly or through others (itself only by a cycle)."""
    seen: set[str] = set()
    to_visit = list(imports.get(start, set()))
    while to_visit:
        module = to_visit.pop()
        if module not in seen:
            seen.add(module)
            to_visit.extend(imports.get(module, set()))
    return seen
