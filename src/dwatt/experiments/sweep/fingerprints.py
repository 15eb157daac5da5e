"""A sweep's backbone known by its content: the SHA-256 of a local backbone folder's config.json, weight and
tokenizer files, so a folder whose model or tokenization changed between sittings is noticed (a Hub id is known by
its name only). The runs load their tokenizer from the same folder: a vocabulary or `do_lower_case` edited in place
gives other sub-words, and two tokenizations must not meet in one table."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from ...assets import ASSET_PREFIX, bundled_minilm_path, resolve_model_path
from ...data.fingerprints import file_sha256

#: The files of a model folder that decide what the backbone computes.
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.index.json")
#: The files that decide how its input is cut into sub-words (fast and slow tokenizers, BPE and SentencePiece).
TOKENIZER_PATTERNS = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                      "vocab.txt", "vocab.json", "merges.txt", "*.model")  # fmt: skip
#: (path, size, mtime) -> SHA-256: hashed once per process, however often a sitting asks.
_CACHE: dict[tuple[str, int, int], str] = {}


def backbone_folder(name_or_path: str | None) -> Path | None:
    """The local folder a sweep's backbone names (None: the bundled MiniLM; `asset:<name>`: its installed
    folder), or None for a Hub id. An asset not installed is not a folder yet: None (the run itself fails on
    it, with the install command)."""
    if name_or_path is None:
        return bundled_minilm_path()
    try:
        path = Path(resolve_model_path(name_or_path))
    except (OSError, ValueError):
        return None
    if name_or_path.startswith(ASSET_PREFIX) or path.is_dir():
        return path if path.is_dir() else None
    return None


def backbone_fingerprint(name_or_path: str | None) -> dict[str, str] | None:
    """File name -> SHA-256 of a local backbone folder's config.json, weight and tokenizer files; None for a Hub id."""
    folder = backbone_folder(name_or_path)
    if folder is None:
        return None
    files = {folder / "config.json"} if (folder / "config.json").is_file() else set()
    for pattern in WEIGHT_PATTERNS + TOKENIZER_PATTERNS:
        files.update(path for path in folder.glob(pattern) if path.is_file())
    return {path.name: _cached_sha256(path) for path in sorted(files)}


def _cached_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = file_sha256(path)
    return _CACHE[key]


def is_tokenizer_file(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in TOKENIZER_PATTERNS)
