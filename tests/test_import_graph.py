"""The import graph of iovsim/ (module-level and function-level imports, read with `ast`).

No circle between modules, and dependencies point one way: mobility and channel import neither
fl, strategies, the engine nor the layers above; fl and strategies never import the engine,
experiment, config, cli or compare; the engine and the run loop import neither cli nor env. costs is read by all of them.
"""
import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "iovsim"

# part -> parts it must not import
FORBIDDEN = {
    "mobility": {"fl", "strategies", "engine", "experiment", "config", "cli", "compare", "env"},
    "channel": {"fl", "strategies", "engine", "experiment", "config", "cli", "compare", "env"},
    "fl": {"engine", "experiment", "config", "cli", "compare", "env"},
    "strategies": {"engine", "experiment", "config", "cli", "compare", "env"},
    "costs": {"fl", "strategies", "engine", "experiment", "config", "cli", "compare", "env"},
    "engine": {"cli", "env"},
    "experiment": {"cli", "env"},   # the RL environment sits on top of the run loop, beside the cli
}


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """iovsim names imported anywhere in the file (relative imports resolved); `from a import b`
    gives "a.b" (resolved to module a.b, or to a when b is an attribute)."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(anchor + ([base] if base else []))
            out |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m == "iovsim" or m.startswith("iovsim.")}


def import_graph(root: Path = PACKAGE) -> nx.DiGraph:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(files)
    for name, path in files.items():
        for target in imports_of(path, name):
            while target not in files and "." in target:  # an attribute of a module: that module
                target = target.rsplit(".", 1)[0]
            if target in files and target != name:
                g.add_edge(name, target)
    return g


def part(module: str) -> str:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else ""


def violations(g: nx.DiGraph) -> list[str]:
    bad = []
    for a, b in g.edges:
        if part(b) in FORBIDDEN.get(part(a), ()):
            bad.append(f"{a} imports {b}")
    bad += [f"import circle: {' -> '.join(c + [c[0]])}" for c in nx.simple_cycles(g)]
    return bad


def test_iovsim_import_graph_points_one_way():
    g = import_graph()
    assert g.number_of_edges() > 50  # the parser did find the imports
    assert ("iovsim.experiment", "iovsim.engine.transfer") in g.edges
    assert violations(g) == []


@pytest.mark.parametrize("planted, expected", [
    ("channel/_planted.py", "iovsim.channel._planted imports iovsim.fl.aggregate"),
    ("fl/_planted.py", "iovsim.fl._planted imports iovsim.fl.aggregate"),  # no violation: same part
])
def test_a_planted_violation_is_found(tmp_path, planted, expected):
    import shutil

    root = tmp_path / "iovsim"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / planted).write_text("def f():\n    from iovsim.fl.aggregate import fedavg\n    return fedavg\n")
    bad = violations(import_graph(root))
    assert (expected in bad) == planted.startswith("channel/")


def test_a_planted_circle_is_found(tmp_path):
    import shutil

    root = tmp_path / "iovsim"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    with open(root / "fl" / "aggregate.py", "a") as f:
        f.write("\nfrom iovsim.fl import train  # noqa\n")
    with open(root / "fl" / "train.py", "a") as f:
        f.write("\nimport iovsim.fl.aggregate  # noqa\n")
    assert any(v.startswith("import circle") and "iovsim.fl.aggregate" in v for v in violations(import_graph(root)))
