"""platform_deploy's import graph has no cycle and no upward arrow: ground, then the
catalogue, then the layers, then config (which gathers the layers' settings); deploy.py,
outside the package, orders the layers."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "platform_deploy"
TIERS = {
    "ground": {"model", "converge", "secrets", "stack_state", "containers"},
    "catalogue": {"topology", "services", "memory", "rollout"},
    "config": {"config"},
}
ORDER = ("ground", "catalogue", "layers", "config")


def tier(module):
    return next((name for name, members in TIERS.items() if module in members), "layers")


def module_name(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path):
    """The package's modules `path` imports when it runs (`if TYPE_CHECKING:` blocks left out)."""
    me = module_name(path)
    package = me.rsplit(".", 1)[0] if "." in me or path.name == "__init__.py" else ""
    found = set()
    tree = ast.parse(path.read_text())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package.split(".") if package else []
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        module = ".".join([*base, *([node.module] if node.module else [])])
        found.add(module)
        found.update(
            f"{module}.{alias.name}".lstrip(".") for alias in node.names
        )  # submodules: from .apps import chatwoot
    return {
        m
        for m in found
        if m
        and (
            (PACKAGE / f"{m.replace('.', '/')}.py").exists() or (PACKAGE / m.replace(".", "/") / "__init__.py").exists()
        )
    } - {me}


GRAPH = {module_name(p): runtime_imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_import_cycle():
    state, cycles = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles in platform_deploy: {cycles}"


def test_no_upward_import():
    upward = [
        f"{m} ({tier(m)}) imports {t} ({tier(t)})"
        for m, targets in GRAPH.items()
        for t in targets
        if ORDER.index(tier(t)) > ORDER.index(tier(m))
    ]
    assert not upward, f"imports from a higher tier: {upward}"


def test_the_graph_is_read():
    # The checks above would pass on an empty graph.
    assert "services" in GRAPH["stack"] and "model" in GRAPH["apps.chatwoot"] and "stack" in GRAPH["config"]
