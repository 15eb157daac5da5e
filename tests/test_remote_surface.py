"""The remote-code surface: what `trust_remote_code=True` runs when it loads a DWAtt checkpoint.

The hub-portable pair (`configuration_dwatt.py`, `modeling_dwatt.py`) is copied next to every checkpoint
and executed by whoever loads it. It must not run dynamic code (`exec`/`eval`/`compile`), unpickle
(`pickle`, `torch.load`), touch the network, files or processes itself; weights reach it only through
`from_pretrained`, which reads safetensors (pickled `.bin` files are refused unless asked for).
Checked statically on the syntax tree, and dynamically in a fresh interpreter where those calls raise.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_backbone_config

import dwatt
from dwatt import DWAttConfig, DWAttForTokenClassification

PAIR = [Path(dwatt.__file__).with_name(name) for name in ("configuration_dwatt.py", "modeling_dwatt.py")]

ALLOWED_IMPORTS = {
    "__future__", "collections", "copy", "dataclasses", "functools", "itertools", "logging", "math", "re",
    "typing", "warnings", "torch", "transformers",
    "difflib",  # string similarity only: "did you mean" for misspelled config keywords
    "os",  # os.path checks of a checkpoint folder; os.system/popen/exec/spawn/fork stay forbidden below
}  # fmt: skip
ALLOWED_RELATIVE_IMPORTS = {"configuration_dwatt"}
FORBIDDEN_CALLS = {"exec", "eval", "compile", "__import__", "open", "input", "breakpoint", "globals", "locals"}
FORBIDDEN_NAMES = {"__builtins__", "builtins", "pickle", "marshal", "shelve", "dill", "subprocess", "socket"}
# Dotted names (or their prefixes) that read pickles, open connections, download or start processes.
FORBIDDEN_ATTRIBUTES = (
    "torch.load", "torch.jit.load", "torch.package", "torch.hub", "torch.serialization",
    "os.system", "os.popen", "os.exec", "os.spawn", "os.fork",
    "transformers.utils.hub", "hf_hub_download", "snapshot_download", "HfApi", "cached_file",
    "urllib", "requests", "http", "importlib", "ctypes",
)  # fmt: skip


def dotted(node: ast.AST) -> str | None:
    """`a.b.c` for an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def surface_violations(source: str) -> list[str]:
    """Every forbidden import, call, name or attribute in a module's source, as `line: what`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if a.name.split(".")[0] not in ALLOWED_IMPORTS]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] not in ALLOWED_IMPORTS:
                found.append(f"{line}: from {node.module} import ...")
            if node.level > 0 and (node.level != 1 or node.module not in ALLOWED_RELATIVE_IMPORTS):
                found.append(f"{line}: from {'.' * node.level}{node.module or ''} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{line}: call {node.func.id}()")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"{line}: name {node.id}")
        elif isinstance(node, ast.Attribute):
            name = dotted(node) or node.attr
            if any(name == bad or name.startswith(bad + ".") or node.attr == bad for bad in FORBIDDEN_ATTRIBUTES):
                found.append(f"{line}: {name}")
            if name.startswith(("os.exec", "os.spawn")):
                found.append(f"{line}: {name}")
    return found


@pytest.mark.parametrize("path", PAIR, ids=lambda path: path.name)
def test_the_hub_portable_pair_has_no_dangerous_calls(path):
    assert surface_violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle",
        "import os\nos.system('ls')",
        "from subprocess import run",
        "import torch\ntorch.load('w.bin')",
        "x = eval('1')",
        "exec('x = 1')",
        "code = compile('1', 'f', 'eval')",
        "import urllib.request",
        "from huggingface_hub import hf_hub_download",
        "from ..dwatt import data",
        "from .data import read_column_file",
        "f = open('weights')",
        "__import__('socket')",
        "import importlib\nimportlib.import_module('x')",
    ],
)
def test_the_checker_catches_each_forbidden_form(snippet):
    """The static check is only worth something if it fires: every forbidden form is caught."""
    assert surface_violations(snippet), snippet


GUARDED_LOAD = r"""
import importlib.abc, json, sys

class BlockDwatt(importlib.abc.MetaPathFinder):
    # an editable install puts dwatt on sys.path through site-packages, which -I keeps
    def find_spec(self, name, path=None, target=None):
        if name == "dwatt" or name.startswith("dwatt."):
            raise ImportError(name)

sys.meta_path.insert(0, BlockDwatt())
import torch, transformers

# From here on, unpickling, connecting, resolving host names or starting processes fails the load
# (Python's audit events also see what C code does). exec/eval are left to the static check: the
# import machinery itself runs every module through exec.
FORBIDDEN_EVENTS = {"pickle.find_class", "socket.connect", "socket.getaddrinfo", "subprocess.Popen", "os.system",
                    "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty"}

def audit(event, args):
    if event in FORBIDDEN_EVENTS:
        raise RuntimeError(f"the remote code triggered {event}{args!r:.200}")

def refuse_torch_load(*args, **kwargs):  # torch's weights-only unpickler raises no pickle audit event
    raise RuntimeError("the remote code called torch.load")

sys.addaudithook(audit)
torch.load = refuse_torch_load
checkpoint, result = sys.argv[1], sys.argv[2]
model = transformers.AutoModelForTokenClassification.from_pretrained(checkpoint, trust_remote_code=True)
with torch.no_grad():
    logits = model(input_ids=torch.tensor([[5, 6, 7]])).logits
json.dump({"module": type(model).__module__, "logits": logits.tolist()}, open(result, "w"))
"""


def test_remote_loading_runs_without_pickle_network_or_processes(tmp_path):
    torch.manual_seed(0)
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3)).eval()
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    (tmp_path / "load.py").write_text(GUARDED_LOAD)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HOME=str(tmp_path / "hf"))
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "load.py"), str(checkpoint), str(tmp_path / "result.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["module"].startswith("transformers_modules.")
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([[5, 6, 7]])).logits
    torch.testing.assert_close(torch.tensor(result["logits"]), expected)


def test_a_checkpoint_with_only_pickled_weights_is_refused(tmp_path):
    """A `pytorch_model.bin` (a pickle: loading it can run code) is not read unless the caller opts in."""
    torch.manual_seed(0)
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3))
    model.save_pretrained(tmp_path)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(OSError, match="safetensors only.*Pass use_safetensors=False to read pickled weights"):
        DWAttForTokenClassification.from_pretrained(tmp_path)
    loaded = DWAttForTokenClassification.from_pretrained(tmp_path, use_safetensors=False)  # the caller's choice
    torch.testing.assert_close(loaded.classifier.weight, model.classifier.weight)
