"""The package's shape: imports point one way (no cycles, counting imports inside functions), modules stay short."""

import ast
import pathlib

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "sgdlab"


def module_names():
    """{dotted module name: path} for every .py file of the package (a package is its __init__)."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_modules(name, path, modules):
    """The package modules that ``name`` imports, anywhere in the file (top level, functions, methods)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            # "from X import y" imports X, and X.y when y is a module
            targets = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:       # "import a.b.c" where only a.b is a module here
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("sgdlab"):
                found.add(target)
    return found


def import_graph():
    modules = module_names()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of module names, or None (depth-first search, three colours)."""
    colour, stack = {}, []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == "grey":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in colour:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        colour[node] = "black"
        return None

    for node in sorted(graph):
        if node not in colour:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "sgdlab.run" in graph["sgdlab.sweep.runner"]          # `from ..run import train_run` in run_trial
    assert "sgdlab.plots" in graph["sgdlab.sweep.command"]       # `from .. import plots` in a function
    assert "sgdlab.fast_gradient" in graph["sgdlab.model"]


def test_find_cycle_finds_a_cycle_through_a_function_level_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_package_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


MAX_LINES = 500


def test_no_module_is_over_500_lines():
    """House rule: a module that passes ~500 lines splits by job (``wc -l``)."""
    long = {name: path.read_text(encoding="utf-8").count("\n") for name, path in module_names().items()}
    assert {name: n for name, n in long.items() if n > MAX_LINES} == {}


def test_the_one_loop_rules_live_in_one_place():
    """Tools import the divergence rule and "best" from the loop's modules instead of restating them."""
    import sgdlab.history
    import sgdlab.sweep.table
    import sgdlab.training

    assert sgdlab.sweep.table.divergence is sgdlab.training.divergence
    assert sgdlab.sweep.table.best_row_index is sgdlab.history.best_row_index
    graph = import_graph()
    for tool in ("sgdlab.sklearn", "sgdlab.board.playground", "sgdlab.sweep.range_test", "sgdlab.run"):
        assert "sgdlab.training" in graph[tool], tool
