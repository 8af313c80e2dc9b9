"""The code's shape: each third-party library has one owner, and app's modules import no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

OWNERS = {  # library -> the modules (or packages, ending in /) allowed to import it
    "llama_cpp": ("engine/", "llamalib.py"),
    "huggingface_hub": ("downloader.py",),
    "gradio": ("ui/",),
    "starlette": ("api.py", "worker.py"),
    "uvicorn": ("worker.py",),
    "httpx2": ("downloader.py", "remote.py"),
    "openai": (),  # the tests' client only: Iris speaks the format itself (app/openai_format.py)
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_each_library_is_imported_by_its_owner_only():
    wrong = []
    for path in sorted(APP.rglob("*.py")):
        rel = path.relative_to(APP).as_posix()
        for name in _imports(path):
            lib = name.split(".")[0]
            if lib in OWNERS and not any(rel == o or (o.endswith("/") and rel.startswith(o)) for o in OWNERS[lib]):
                wrong.append(f"{rel} imports {name}")
    assert wrong == []


def test_app_modules_import_no_cycle_at_load_time():
    """Module-level imports between app's modules form no cycle (imports inside functions are lazy on purpose)."""
    graph: dict[str, set[str]] = {}
    for path in APP.rglob("*.py"):
        mod = "app." + ".".join(path.relative_to(APP).with_suffix("").parts)
        mod = mod.removesuffix(".__init__")
        deps = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # top level only
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
                # `from app.ui import handlers` needs the submodule, not the package's __init__.
                subs = {f"{node.module}.{a.name}" for a in node.names}
                found = {m for m in subs if (APP.parent / m.replace(".", "/")).with_suffix(".py").exists()}
                deps.update(found or {node.module})
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("app"))
        graph[mod] = {d for d in deps if d != mod}

    seen: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, stack: list[str]) -> None:
        if cycle or seen.get(m) == 2:
            return
        if seen.get(m) == 1:
            cycle.extend(stack[stack.index(m):] + [m])
            return
        seen[m] = 1
        for d in sorted(graph.get(m, set())):
            if d in graph:
                visit(d, stack + [m])
        seen[m] = 2

    for m in sorted(graph):
        visit(m, [])
    assert cycle == [], " -> ".join(cycle)
