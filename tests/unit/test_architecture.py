"""Import rules of the ``pipeline`` package and the DAG files, checked statically with ``ast`` (nothing is imported).

Every ``import``/``from`` statement under pipeline/ and dags/ is collected, including those inside functions
(a lazy import is still a dependency) and relative ones. Imports under ``if TYPE_CHECKING:`` never run, so
only the airflow rule counts them.

1. No import cycle among pipeline modules: a cycle breaks as soon as one of its lazy imports moves up.
2. Evaluation and the consumers do not import training: they read what training left in MLflow and the
   registry, so they must not depend on the training code (nor pull torch in through it).
3. Only the writers of validated data import pipeline.ingest.publish; the readers go through a read-only
   interface, so reading can never publish.
4. pipeline/ imports no airflow: the steps run and are tested without the orchestrator.
5. DAG files import nothing heavy at module level: the scheduler parses them every few seconds.
   tests/dags/test_dag_integrity.py checks the same at run time, transitively; this is the static rule.
Dynamic imports (importlib.import_module) are out of reach of these checks.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"torch", "transformers", "great_expectations", "mlflow", "pandas", "numpy", "sklearn"}
# Who may import the writer of validated data: itself, the ingest modules whose job is writing (land, read the
# raw files, validate, report on a publish, import a history), the step wrappers and the CLI that run it. Every reader
# (pipeline.datasets, pipeline.ingest.quality, consumers, evaluation, training) must not.
PUBLISH_IMPORTERS = {"pipeline.ingest.publish", "pipeline.ingest.land", "pipeline.ingest.readers",
                     "pipeline.ingest.validate", "pipeline.ingest.report", "pipeline.ingest.history", "pipeline.steps",
                     "pipeline.__main__"}


@dataclass(frozen=True)
class Import:
    name: str  # most specific dotted name: "a.b" for `import a.b`, "a.b.c" for `from a.b import c`
    line: int
    lazy: bool  # inside a function body
    type_only: bool  # under `if TYPE_CHECKING:`


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # "path:line"


def find_imports(source: str, module: str, is_package: bool) -> list[Import]:
    """Every import statement of a module, relative ones resolved against the module's package."""
    package = (module if is_package else module.rpartition(".")[0]).split(".")
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool, type_only: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, lazy, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.extend(Import(f"{base}.{alias.name}", node.lineno, lazy, type_only) for alias in node.names)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in (getattr(node.test, "id", ""),
                                                              getattr(node.test, "attr", "")):
            for child in node.body:
                visit(child, lazy, True)
            for child in node.orelse:
                visit(child, lazy, type_only)
            return
        lazy = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, lazy, type_only)

    visit(ast.parse(source), False, False)
    return found


@functools.cache
def scan(folder: str) -> dict[str, tuple[str, list[Import]]]:
    """module name -> (file, its imports) for every .py file under ROOT/folder; a package is its __init__.py."""
    found = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[module] = (str(path.relative_to(ROOT)), find_imports(path.read_text(), module, parts[-1] == "__init__"))
    return found


def resolve(name: str, modules: Collection[str]) -> str | None:
    """The longest prefix of a dotted name that is a module: `from a import b` is a.b if a module, else a."""
    parts = name.split(".")
    return next((m for i in range(len(parts), 0, -1) if (m := ".".join(parts[:i])) in modules), None)


@functools.cache
def pipeline_edges() -> list[Edge]:
    """Imports of pipeline modules by pipeline modules, one per statement, TYPE_CHECKING left out."""
    modules = scan("pipeline")
    return list(dict.fromkeys(
        Edge(module, target, f"{path}:{imp.line}") for module, (path, imports) in modules.items() for imp in imports
        if not imp.type_only and (target := resolve(imp.name, modules)) not in (None, module)))


def find_cycle(graph: Mapping[str, Collection[str]]) -> list[str] | None:
    """One cycle [a, b, ..., a] of a directed graph, found depth-first, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                return path[path.index(nxt):] + [nxt]
            if nxt not in done and (cycle := visit(nxt)):
                return cycle
        done.add(path.pop())
        return None

    return next((c for n in sorted(graph) if n not in done and (c := visit(n))), None)


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _report(rule: str, offending: list[str]) -> str:
    return f"{rule} ({len(offending)}):\n  " + "\n  ".join(offending)


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for edge in pipeline_edges():
        graph.setdefault(edge.source, set()).add(edge.target)
    cycles = []  # drop the modules of each cycle found and search again: node-disjoint cycles, a checklist
    while cycle := find_cycle(graph):
        cycles.append(" -> ".join(cycle) + "".join(f"\n    {e.where} -> {e.target}" for a, b in zip(cycle, cycle[1:])
                                                   for e in pipeline_edges() if (e.source, e.target) == (a, b)))
        for module in cycle:
            graph.pop(module, None)
    assert not cycles, _report("import cycles among pipeline modules", cycles)


def test_evaluation_and_consumers_do_not_import_training() -> None:
    bad = [f"{e.where} -> {e.target}" for e in pipeline_edges() if _in(e.target, "pipeline.training")
           and (_in(e.source, "pipeline.evaluation") or _in(e.source, "pipeline.consumers"))]
    assert not bad, _report("evaluation/consumers import training", bad)


def test_only_writers_import_publish() -> None:
    bad = [f"{e.where} -> {e.target}" for e in pipeline_edges()
           if e.target == "pipeline.ingest.publish" and e.source not in PUBLISH_IMPORTERS]
    assert not bad, _report("readers of validated data import the writer", bad)


def test_pipeline_imports_no_airflow() -> None:
    bad = [f"{path}:{imp.line} -> {imp.name}" for path, imports in scan("pipeline").values()
           for imp in imports if imp.name.split(".")[0] == "airflow"]
    assert not bad, _report("pipeline/ imports airflow", bad)


def test_dag_files_import_nothing_heavy_at_module_level() -> None:
    bad = [f"{path}:{imp.line} -> {imp.name}" for path, imports in scan("dags").values()
           for imp in imports if not (imp.lazy or imp.type_only) and imp.name.split(".")[0] in HEAVY]
    assert not bad, _report("DAG files import heavy libraries at module level", bad)


def test_the_graph_builder_sees_the_imports() -> None:
    """So that the rules above cannot pass vacuously."""
    assert len(scan("pipeline")) > 30 and len(scan("dags")) > 0
    assert Edge("pipeline.steps", "pipeline.settings", "") in {Edge(e.source, e.target, "") for e in pipeline_edges()}
    source = "from . import b\nfrom ..c import d\nif TYPE_CHECKING:\n    import e\ndef f():\n    import g\n"
    found = [(i.name, i.lazy, i.type_only) for i in find_imports(source, "p.q.a", is_package=False)]
    assert found == [("p.q.b", False, False), ("p.c.d", False, False), ("e", False, True), ("g", True, False)]
    assert resolve("p.q.b.name", {"p", "p.q", "p.q.b"}) == "p.q.b" and resolve("os.path", {"p"}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_what_evaluation_calls_through_the_family_table_is_not_training_code() -> None:
    """The table names functions as strings (imported when used), out of reach of the rules
    above: the ones evaluation and datasets call must not lead back into training."""
    from pipeline.families import FAMILIES

    bad = [f"{name}.{field} = {getattr(record, field)}" for name, record in FAMILIES.items()
           for field in ("build", "question", "baseline", "score", "slices", "plot")
           if _in(getattr(record, field).partition(":")[0], "pipeline.training")]
    assert not bad, _report("family functions used by evaluation live in training", bad)
    for record in FAMILIES.values():  # and every name resolves
        for field in ("build", "question", "baseline", "score", "slices", "plot", "hyperparameters"):
            assert callable(record.function(field)), (record.name, field)
        assert callable(getattr(record.module(), "fine_tune"))
