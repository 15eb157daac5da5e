"""The hub-portable pair imports only the standard library, torch, transformers and each other."""

import ast
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "dwatt"
PAIR = {"configuration_dwatt.py": {"configuration_dwatt"}, "modeling_dwatt.py": {"configuration_dwatt"}}
ALLOWED_TOP_LEVEL = {"torch", "transformers"} | set(sys.stdlib_module_names)


def imports_of(path: Path):
    """(module, is_relative, line) of every import, including those inside functions and try blocks."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, False, node.lineno
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level > 0, node.lineno
            if node.level > 1 or (node.level == 1 and node.module is None):
                yield "..", True, node.lineno


@pytest.mark.parametrize("filename", sorted(PAIR))
def test_pair_imports_only_stdlib_torch_transformers_and_each_other(filename):
    path = SOURCE / filename
    for module, relative, line in imports_of(path):
        where = f"{filename}:{line}"
        if relative:
            assert module in PAIR[filename], f"{where}: relative import {module!r}; only the sibling file is allowed"
        else:
            assert module.split(".")[0] in ALLOWED_TOP_LEVEL, f"{where}: imports {module!r}"
