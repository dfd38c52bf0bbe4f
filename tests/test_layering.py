"""The layering of DESIGN.md, enforced: every module's imports (lazy ones inside functions
too) are read from the source and checked against the table below.

| layer              | folder      | must not import                                     |
|--------------------|-------------|-----------------------------------------------------|
| internvqa.runtime  | runtime/    | torch, timm, onnx (and its converters), the other layers |
| internvqa.distill  | distill/    | internvqa.export, internvqa.bench                   |
| internvqa.export   | export/     | internvqa.bench                                     |
| internvqa.bench    | benchmarks/ | - (may import everything)                           |

Within the bench layer, the classic peers (`internvqa.bench.peers`) stay torch-free.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"internvqa.runtime": "runtime", "internvqa.distill": "distill",
          "internvqa.export": "export", "internvqa.bench": "benchmarks"}
HEAVY = ("torch", "torchvision", "timm", "onnx", "onnxscript", "onnxconverter_common")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "internvqa.runtime": (*HEAVY, "internvqa.distill", "internvqa.export", "internvqa.bench"),
    "internvqa.distill": ("internvqa.export", "internvqa.bench"),
    "internvqa.export": ("internvqa.bench",),
    "internvqa.bench": (),
    "internvqa.bench.peers": HEAVY,  # the most specific prefix applies
}


def module_name(path: Path) -> str:
    """Dotted module name of a file in one of the layer folders."""
    rel = path.relative_to(ROOT)
    layer = next(pkg for pkg, folder in LAYERS.items() if rel.parts[0] == folder)
    parts = [*layer.split("."), *rel.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement, anywhere in the file."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*"]
    return found


def rule_for(module: str) -> tuple[str, tuple[str, ...]]:
    owner = max((k for k in FORBIDDEN if module == k or module.startswith(k + ".")), key=len)
    return owner, FORBIDDEN[owner]


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    owner, banned = rule_for(module)
    out = []
    for line, name in imports_of(source, module, is_package):
        for ban in banned:
            if name == ban or name.startswith(ban + "."):
                out.append(f"{module}:{line} imports {name} ({owner} must not import {ban})")
    return sorted(set(out))


def project_modules() -> list[Path]:
    return sorted(p for folder in LAYERS.values() for p in (ROOT / folder).rglob("*.py")
                  if "__pycache__" not in p.parts)


def test_every_module_respects_the_layering():
    files = project_modules()
    assert len(files) > 50
    assert {module_name(p).split(".")[1] for p in files} == {"runtime", "distill", "export", "bench"}
    bad = []
    for p in files:
        bad += violations(p.read_text(encoding="utf-8"), module_name(p), p.name == "__init__.py")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("module", "source", "hit"), [
    ("internvqa.runtime.scorer", "def f():\n    import torch\n", "torch"),
    ("internvqa.runtime.scorer", "from internvqa import bench\n", "internvqa.bench"),
    ("internvqa.runtime.scorer", "from internvqa.bench.bench import accuracy\n", "internvqa.bench"),
    ("internvqa.runtime.scorer", "import onnx.helper\n", "onnx"),
    ("internvqa.distill.models.vit", "from ...export import cli\n", "internvqa.export"),
    ("internvqa.export.cli", "def f():\n    from internvqa.bench import baseline\n",
     "internvqa.bench"),
    ("internvqa.bench.peers.brisque", "import torch\n", "torch"),
])
def test_the_checker_finds_planted_imports(module, source, hit):
    found = violations(source, module)
    assert found and all(f"must not import {hit}" in v for v in found), found


def test_allowed_imports_pass():
    assert violations("import onnxruntime\nfrom internvqa.runtime import bundle\n",
                      "internvqa.runtime.scorer") == []
    assert violations("from .checkpoint import load\nimport torch\n", "internvqa.distill.cli") == []
    assert violations("import torch\nfrom internvqa.distill import checkpoint\n"
                      "from internvqa.export import cli\n", "internvqa.bench.bench") == []
    assert imports_of("from . import bench\n", "internvqa.bench", is_package=True)[-1][1] == \
        "internvqa.bench.bench"
