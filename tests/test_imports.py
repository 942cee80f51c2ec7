"""The package's import graph: no cycles, no upward imports, no bpy under core/, and a torch-free
`import pointmap.core`. Parsed from the source (ast), so lazy imports inside functions count too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"tests", "bench", "samples", "training", "docs", ".venv", ".gpujobs", "build", "dist"}

# Layers, lowest first: a module may import its own layer or lower ones, never a higher one.
LAYERS = {"core": 0, "scene": 1, "operators": 2, "ui": 2}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in SKIP_DIRS or any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(["pointmap", *parts])] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules `name` imports (anywhere in the file), resolved to the longest known module name."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "pointmap":
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_import_cycles():
    graph = _graph()
    # A package's __init__ re-exporting its modules is not a cycle of concepts; leave those edges out.
    trimmed = {m: {t for t in ts if not (m.startswith(t + ".") and _modules_is_pkg(t))} for m, ts in graph.items()}
    assert _cycles(trimmed) == []


def _modules_is_pkg(name: str) -> bool:
    return (ROOT.joinpath(*name.split(".")[1:]) / "__init__.py").exists()


def test_no_upward_imports():
    bad = []
    for mod, targets in _graph().items():
        lm = _layer(mod)
        if lm is None:
            continue
        for t in targets:
            lt = _layer(t)
            if lt is None and t.split(".")[1] in ("cli", "demo", "__main__"):
                lt = 3
            if lt is not None and (lt > lm or (lt == lm and lm == 2 and t.split(".")[1] != mod.split(".")[1]
                                               and mod.split(".")[1] == "ui")):
                bad.append(f"{mod} -> {t}")
    assert bad == []


def test_core_never_imports_bpy():
    bad = []
    for name, path in _modules().items():
        if not name.startswith("pointmap.core"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m == "bpy" or m.startswith(("bpy.", "mathutils", "bmesh")) for m in mods):
                bad.append(name)
    assert bad == []


def test_import_core_loads_no_torch():
    code = "import sys, pointmap.core, pointmap.core.options; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.split() == ["False"], res.stdout + res.stderr
