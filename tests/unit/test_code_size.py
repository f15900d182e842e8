"""The house stays small: no module over about 350 lines, no function over a screen."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "platform_deploy"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_modules_stay_small():
    long = {p.name: n for p in SOURCES if (n := len(p.read_text().splitlines())) > 350}
    assert not long, f"split these modules by what they do: {long}"


def test_functions_fit_on_a_screen():
    long = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long, f"split these functions: {long}"
