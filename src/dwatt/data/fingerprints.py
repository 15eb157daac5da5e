"""Data files known by their content: a SHA-256 per file a run reads, so a file edited in place is noticed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..assets import BUNDLED_WNUT16, bundled_wnut16_path

DATA_FILE_ARGUMENTS = ("train_file", "validation_file", "test_file")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprints(data: dict) -> dict[str, str]:
    """Argument name -> SHA-256 of the file it names, for the data arguments of a run or a sweep (`train_file`,
    ...; the bundled WNUT-16 file for `dataset_name` when no file is given). A Hub dataset has none here: its
    revision is the Hub's to pin."""
    files = {name: data[name] for name in DATA_FILE_ARGUMENTS if data.get(name)}
    if not files and data.get("dataset_name", BUNDLED_WNUT16) == BUNDLED_WNUT16:
        files = {"dataset_name": bundled_wnut16_path()}
    return {name: file_sha256(path) for name, path in files.items() if Path(path).is_file()}
