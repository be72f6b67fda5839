"""The shape of the code: no import cycle between modules (an import inside a function
counts), no package importing one above it in the layer order, and no oversized files or
functions. Read from the source with ``ast``, so a test cannot be fooled by lazy imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "src" / "seedchip"

# the layers, bottom to top (DESIGN.md section 2): a module may import its own layer and those below
LAYERS = [
    {"units", "errors", "formats", "spec_base", "yamlio", "version", "outputs", "parallel",
     "gc_tuning"},
    {"hardware"},
    {"model"},
    {"perf"},
    {"serve", "silicon"},
    {"calibrate", "validate"},
    {"explore", "fleet", "emulate"},
    {"api", "headline"},
    {"report"},
    {"cli", "__init__"},
]
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["seedchip", *parts])


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package ``name`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[: len(base) - (node.level - 1)]
                target = ".".join(root + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(m, p, known) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: its package {top!r} is in no layer of LAYERS")


@pytest.mark.unit
def test_no_import_cycle_between_modules():
    assert cycles(graph()) == []


@pytest.mark.unit
def test_no_package_imports_one_above_it():
    bad = [f"{m} -> {d}" for m, ds in graph().items() for d in ds
           if d != "seedchip" and layer(d) > layer(m)]
    assert bad == []


@pytest.mark.unit
def test_no_module_imports_the_package_root():
    """``from seedchip import ...`` inside the package runs the root __init__ (which imports
    everything): the classic source of hidden cycles."""
    bad = [m for m, ds in graph().items() if "seedchip" in ds and m != "seedchip"]
    assert bad == []


@pytest.mark.unit
def test_files_and_functions_stay_small():
    long_files, long_functions = [], []
    for m, p in modules().items():
        text = p.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(f"{m}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{m}.{node.name}: {n} lines")
    assert long_files == [] and long_functions == []
