"""The house's layers, checked: no import circle in src/, inference and serve apart from the training
engine, and the layer contract of pyproject.toml ([tool.importlinter]) kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")
ROOT = Path(__file__).resolve().parents[1]


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan): each is an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("dualstream", cache_dir=None)


def test_the_circle_finder_finds_circles():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_circle_in_src(graph):
    modules = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(modules) > 50
    assert import_circles(modules) == []


@pytest.mark.parametrize("package", ["dualstream.inference", "dualstream.serve"])
def test_inference_and_serve_do_not_reach_the_engine(graph, package):
    assert not graph.chain_exists(importer=package, imported="dualstream.engine", as_packages=True)


def test_layer_contract_is_kept(monkeypatch):
    cli = pytest.importorskip("importlinter.cli")
    monkeypatch.chdir(ROOT)
    assert cli.lint_imports(config_filename=os.fspath(ROOT / "pyproject.toml"), no_cache=True) == 0
