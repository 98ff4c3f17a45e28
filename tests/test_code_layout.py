"""The house rules of the code itself, read from the source: `live/` never imports `training/`,
no module imports another that imports it back (imports inside functions included), no
function runs past 80 lines, and no commit hash sits in a comment or docstring (measurements
and history belong in docs/)."""
import ast
import re
from pathlib import Path

from conftest import ROOT

PACKAGES = ("live", "training")


def modules():
    """{module name: parsed source} for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return found


def imports(tree, known):
    """The project's modules a module imports, anywhere in it. `from live import store` is an
    import of live.store, not of the package `live` as a whole."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(known)
            found |= submodules if len(submodules) == len(node.names) else submodules | ({node.module} & set(known))
    return found


def test_live_knows_nothing_of_training():
    trees = modules()
    offenders = {name: sorted(target for target in imports(tree, trees) if target.startswith("training"))
                 for name, tree in trees.items() if name.startswith("live")}
    assert not {name: found for name, found in offenders.items() if found}


def test_no_import_cycle():
    trees = modules()
    graph = {name: imports(tree, trees) - {name} for name, tree in trees.items()}
    cycles, state = [], {}

    def visit(name, path):  # depth-first; a module met again on the current path closes a cycle
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles


def test_no_function_over_80_lines():
    long = [f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for name, tree in modules().items() for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80]
    assert not long


def test_no_commit_hash_in_the_code():
    """7 to 40 hex digits with a digit and a letter, outside string literals that are data (a
    sha256 of a known file is data: it is 64 digits, beyond this rule)."""
    pattern = re.compile(r"(?<![0-9a-fA-F])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![0-9a-fA-F])")
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                found += [f"{path.relative_to(ROOT)}:{number}: {match}" for match in pattern.findall(line)]
    assert not found
