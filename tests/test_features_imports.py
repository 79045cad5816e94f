"""The feature cache's import graph (grimp, from import-linter): engines and the cache never
import the dispatcher, and no import cycle runs through the package, so each part can be
read, tested and replaced on its own."""

from __future__ import annotations

import pytest

grimp = pytest.importorskip("grimp")

PACKAGE = "scenesift.features"
PARTS = ("cache", "engine", "layers", "local", "memory", "onnx", "ray")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("scenesift")


def test_the_engines_and_the_cache_never_import_the_dispatcher(graph):
    for part in PARTS:
        chain = graph.find_shortest_chain(importer=f"{PACKAGE}.{part}", imported=PACKAGE)
        assert chain is None, f"{part} reaches the dispatcher: {' -> '.join(chain)}"


def test_no_import_cycle_runs_through_the_package(graph):
    modules = [PACKAGE, *(f"{PACKAGE}.{part}" for part in PARTS)]
    assert set(modules) == {m for m in graph.modules if m.startswith(PACKAGE)}
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            assert back is None, f"cycle: {module} -> {' -> '.join(back)}"
