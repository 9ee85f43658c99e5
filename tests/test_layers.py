"""The package's layers: every module has one, and imports only go down (or sideways) and
never round in a cycle; no module imports another module's private (underscore) names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scripts" / "frameloom"

# Lowest first. A module may import modules of its own layer or below, never above.
LAYERS = {
    "core": ("imageio", "imageops", "joblog", "seeding", "stepcache", "quiet", "devices", "registry"),
    "vision": ("measures", "cast", "analysis", "faces", "mtcnn", "detector", "matte", "segmentation", "inpainting",
               "enhance", "face_restore", "identity", "target", "embedding", "esrgan_backend", "lama_backend",
               "sam2_backend", "vlm_backend", "backends", "model_files", "download", "models"),
    "strategies": ("strategies", "occlusion", "captions"),
    "dataset": ("curation", "dedup", "augment", "exports", "dataset", "training", "temporal",
                "distributions"),
    "report": ("pages", "report_html"),
    "workflow": ("schema", "config", "overrides", "layout", "plan", "batching", "planner", "decision", "merge",
                 "pruning", "summary", "stages", "model_step", "caption_step", "detect_step", "embed_step", "preflight",
                 "discovery", "video", "review", "tune", "demo", "judgement"),
    "cli": ("cli", "aliases", "__init__"),
}
LEVEL = {module: level for level, modules in enumerate(LAYERS.values()) for module in modules}


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of each relative import (lazy ones included), the module
    named as in ``modules()``: ``from .x import ...``, ``from . import x``, and inside a
    subpackage ``from ..x import ...`` (the package's own modules are ``pkg.x``)."""
    package = path.parent.relative_to(PACKAGE).parts  # () for the top package, ("demo",) below it
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)]
            names = [alias.name for alias in node.names]
            if node.module:
                found.append((".".join((*base, node.module.split(".")[0])), names, node.lineno))
            else:
                found += [(".".join((*base, name)), [], node.lineno) for name in names]
    return [(module.removesuffix(".__init__"), names, line) for module, names, line in found]


def modules() -> dict[str, Path]:
    """Every module by dotted name under the package; a subpackage's ``__init__`` by the subpackage's."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)] = path
    return found


def level(module: str) -> int:
    """A subpackage's modules share its layer."""
    return LEVEL[module.split(".")[0]]


def test_every_module_has_a_layer():
    top = {name.split(".")[0] for name in modules()}
    assert sorted(top - set(LEVEL)) == [], "add the new module to a layer in LAYERS"
    assert sorted(set(LEVEL) - top) == [], "LAYERS names a module that is gone"


def test_imports_go_down_only():
    upward = [f"{name}:{line} imports {target} ({layer_of(target)} above {layer_of(name)})"
              for name, path in modules().items() for target, _, line in imports_of(path)
              if level(target) > level(name)]
    assert upward == []


def test_no_import_cycles():
    graph = {name: {target for target, _, _ in imports_of(path) if target in modules()}
             for name, path in modules().items()}
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for target in graph[node]:
                if target == start:
                    cycles.append(" -> ".join(trail + [start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, trail + [target]))
    assert cycles == []


def test_no_private_name_crosses_a_module():
    crossings = [f"{name}:{line} imports {target}.{imported}"
                 for name, path in modules().items() for target, names, line in imports_of(path)
                 for imported in names if imported.startswith("_")]
    # Attribute access on an imported module: `from . import x` then `x._name`.
    for name, path in modules().items():
        imported_modules = {target for target, names, _ in imports_of(path) if not names}
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in imported_modules):
                crossings.append(f"{name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert crossings == []


def test_the_readme_layout_table_names_each_module_in_its_layer():
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    for layer, names in LAYERS.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| {layer} |"))
        listed = set(re.findall(r"`([a-z_0-9]+)/?`", row)) | ({"esrgan_backend", "lama_backend", "sam2_backend",
                                                              "vlm_backend"} if "`*_backend`" in row else set())
        assert set(names) - {"__init__"} == listed, layer


def layer_of(module: str) -> str:
    return list(LAYERS)[level(module)]


def test_no_module_is_over_500_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 500}
    assert long == {}, "split these by concern"
