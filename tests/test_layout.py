"""The package layout follows the data flow: each layer imports only the layers before it.

generator/runtime -> generator/timeline -> generator/offline, and bridge/ (the daemon) on top of generator/;
training/ (PyTorch) beside them; bench/ and musika/ (the command registry) on top of everything. Inference and the
daemon never import torch, training, the benchmarks or the registry, so `pip install musika-bridge` without the
training extra runs the daemon, and a change to training cannot break live playback.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level names (or generator subpackages) it must not import
FORBIDDEN = {
    "generator/runtime": {"generator.timeline", "generator.offline", "bridge", "training", "bench", "musika", "torch"},
    "generator/timeline": {"generator.offline", "bridge", "training", "bench", "musika", "torch"},
    "generator/offline": {"bridge", "training", "bench", "musika", "torch"},
    "bridge": {"training", "bench", "musika", "torch"},
    "training": {"bench", "musika"},
    "bench": {"musika"},
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _violates(module: str, forbidden: set[str]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_layer_imports_only_the_layers_before_it(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        hits = sorted(m for m in imported_modules(path) if _violates(m, FORBIDDEN[package]))
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    assert not bad, f"{package} imports a later layer: {bad}"


def test_the_daemon_and_the_engine_load_without_torch_or_training():
    code = ("import sys, bridge.commands.serve, generator.offline.render, generator.timeline.live; "
            "print(sorted({'torch', 'training', 'bench', 'musika'} & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_checker_sees_an_import_inside_a_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from training.export import export_preset\n")
    assert _violates("training.export", FORBIDDEN["bridge"])
    assert "training.export" in imported_modules(f)


def test_the_quantise_modes_and_sync_modes_have_one_definition():
    """Config, CLI, OSC schema and events take them from where they are used, so a new mode cannot be
    accepted in one place and refused in another."""
    import typing

    from bridge import config, controls, osc_addresses
    from bridge.events import Quantise
    from bridge.sync import SOURCES, SYNC_MODES
    from generator.timeline.planner import QUANTISE_MODES

    assert typing.get_args(Quantise) == QUANTISE_MODES
    assert config.QUANTISE_MODES is controls.QUANTISE_MODES is osc_addresses.QUANTISE_MODES is QUANTISE_MODES
    assert config.SYNC_MODES is osc_addresses.SYNC_MODES is SYNC_MODES and SYNC_MODES == ("auto", *SOURCES)


def _module_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports (anywhere in the file), from the source."""
    paths = {}
    for top in ("generator", "bridge", "training", "bench", "musika"):
        for path in (ROOT / top).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            paths[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                deps |= {f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def test_no_module_imports_itself_through_others():
    """Import cycles (even through imports inside functions) make the order of imports matter; there are none."""
    graph = _module_graph()
    assert len(graph) > 120  # the walk found the project
    cycles = []
    for start in graph:  # a depth-first search for a path back to `start`
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    cycles.append(path)
                elif dep not in seen:
                    seen.add(dep)
                    stack.append((dep, [*path, dep]))
    assert not cycles, f"import cycles: {sorted({' -> '.join(sorted(c)) for c in cycles})}"
