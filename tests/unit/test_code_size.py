"""The house stays small: no file over 400 lines (data aside), no function over a screen."""

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Data, not code or prose: the shipped workflows, the Directus schema, the generated settings reference.
DATA = ("files/n8n/", "files/directus/", "docs/settings.md")


def tracked():
    names = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in names if not name.startswith(DATA) and (ROOT / name).is_file()]


def test_files_stay_small():
    long = {}
    for path in tracked():
        try:
            lines = len(path.read_text().splitlines())
        except UnicodeDecodeError:
            continue
        if lines > 400:
            long[str(path.relative_to(ROOT))] = lines
    assert not long, f"split these files along their seams: {long}"


def test_functions_fit_on_a_screen():
    long = {}
    for path in (ROOT / "platform_deploy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long, f"split these functions: {long}"
