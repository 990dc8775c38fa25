"""Functions short enough to read at once: none in iovsim/ longer than 60 lines."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "iovsim"
MAX_LINES = 60


def long_functions(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    out.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_function_longer_than_60_lines():
    assert long_functions(ROOT) == []


def test_the_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "long.py").write_text(f"def too_long():\n{body}\n")
    assert long_functions(tmp_path) == [f"{tmp_path.name}/long.py:1 too_long (61 lines)"]
