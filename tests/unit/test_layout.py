"""The project's layout rules, read from the source with ``ast`` (nothing is imported): short functions, tests that
import helpers and never other tests or benchmark scripts, each heavy client library behind one door, and an
installed package that holds the commands and nothing of the checkout's tooling."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import setuptools

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
#: STYLE.md: a function longer than this is split into named steps.
MAX_FUNCTION_LINES = 60
INSTALLED = ("consumer", "loader", "stack")


def sources(*folders: str) -> Iterator[Path]:
    """Every Python file under the given folders of the checkout."""
    for folder in folders:
        yield from sorted(path for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts)


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def imported_modules(tree: ast.Module) -> Iterator[tuple[ast.AST, str]]:
    """Each module an import statement names, at any depth (a function-local import counts too). For
    ``from package import name`` both ``package`` and ``package.name`` are yielded: the name may be a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if base:
                yield node, base
            for alias in node.names:
                yield node, f"{base}.{alias.name}" if base else alias.name


def importers(module: str, *folders: str) -> list[str]:
    """``file:line statement`` for every import of ``module`` (or a submodule of it) under ``folders``."""
    found = {}
    for path in sources(*folders):
        for node, name in imported_modules(parsed(path)):
            if name == module or name.startswith(module + "."):
                found[where(path, node)] = ast.unparse(node)
    return [f"{at} {statement}" for at, statement in found.items()]


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for path in sources("consumer", "stack", "loader", "bench"):
        for node in ast.walk(parsed(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{where(path, node)} {node.name} ({lines} lines)")

    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_tests_import_helpers_never_other_tests_or_benchmark_scripts():
    wrong = {}
    for path in sources("tests"):
        for node, name in imported_modules(parsed(path)):
            last = name.rsplit(".", 1)[-1]
            test_module = last.startswith("test_")
            bench_script = name.startswith("bench.") and last.endswith("_bench")
            if test_module or bench_script:
                wrong[where(path, node)] = f"{where(path, node)} {ast.unparse(node)}"

    assert not wrong, "move the helper to tests/integration/support/ (or probes/):\n" + "\n".join(wrong.values())


def test_only_consumer_kafka_imports_the_kafka_client():
    outside = [found for found in importers("confluent_kafka", "consumer") if not found.startswith("consumer/kafka/")]

    assert not outside, "confluent_kafka outside consumer/kafka/:\n" + "\n".join(outside)


def test_only_the_tfio_source_imports_tensorflow_io():
    outside = [
        found
        for found in importers("tensorflow_io", "consumer", "stack", "loader", "probes")
        if not found.startswith("consumer/kafka/tfio_source.py:")
    ]

    assert not outside, "tensorflow_io outside consumer/kafka/tfio_source.py:\n" + "\n".join(outside)


def test_nothing_outside_consumer_imports_tensorflow_or_keras():
    found = importers("tensorflow", "stack", "loader", "probes") + importers("keras", "stack", "loader", "probes")

    assert not found, "TensorFlow or Keras outside consumer/ (tests and bench aside):\n" + "\n".join(found)


def installed_packages() -> set[str]:
    """The packages ``pip install .`` puts in site-packages, found the way setuptools finds them."""
    setuptools_config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    if "packages" in setuptools_config and isinstance(setuptools_config["packages"], list):
        return set(setuptools_config["packages"])
    find = setuptools_config["packages"]["find"]
    finder = setuptools.find_namespace_packages if find.get("namespaces", True) else setuptools.find_packages
    where_ = ROOT / find.get("where", ["."])[0]
    return set(finder(where=str(where_), include=find.get("include", ["*"]), exclude=find.get("exclude", ())))


def test_the_installed_packages_are_consumer_loader_and_stack_with_every_subpackage():
    expected = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in INSTALLED
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }

    installed = installed_packages()
    assert installed == expected, f"installed but not ours: {installed - expected}; left out: {expected - installed}"
    assert {"consumer.records", "consumer.kafka", "consumer.store"} <= expected
