"""The package's shape: small single-purpose modules, thin scripts, no import cycles, a hub-portable pair
that imports only torch, transformers and the standard library, and package data that a regular (not
editable) install carries."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "dwatt"
HUB_PAIR = {"configuration_dwatt", "modeling_dwatt"}
MAX_MODULE_LINES = 500  # modeling_dwatt.py excepted: one file per role, like transformers' modeling files
MAX_SCRIPT_LINES = 80


def modules() -> dict[str, Path]:
    """Dotted name (under dwatt) -> file, `__init__` files as their package. Files in a folder that is no package
    (the seqeval metric script, which `evaluate` loads by path) are not modules of dwatt."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if not (path.parent / "__init__.py").is_file():
            continue
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def module_level_imports(name: str, path: Path) -> set[str]:
    """The dwatt modules `name` imports at import time (not inside functions)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    imported = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import x` may name a module
                candidate = f"{target}.{alias.name}" if target else alias.name
                imported.add(candidate if candidate in modules() else target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dwatt"):
            imported.add(node.module.removeprefix("dwatt").removeprefix("."))
    return {target for target in imported if target in modules()} - {name}


def test_modules_are_small():
    long = {
        name: length
        for name, path in modules().items()
        if name != "modeling_dwatt" and (length := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_scripts_are_thin():
    long = {p.name: n for p in (ROOT / "scripts").glob("*.py") if (n := len(p.read_text().splitlines())) >= 80}
    assert long == {}


def test_no_import_cycles():
    graph = {name: module_level_imports(name, path) for name, path in modules().items()}
    # A package imports its parents first: `a.b` also depends on `a`.
    for name in graph:
        if "." in name:
            graph[name].add(name.rsplit(".", 1)[0])
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(target) :] + [node, target]))
            if target not in state:
                visit(target, trail + [node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_hub_pair_imports_only_torch_transformers_stdlib_and_each_other():
    allowed = {"torch", "transformers", "__future__"} | set(sys.stdlib_module_names)
    for name in HUB_PAIR:
        for node in ast.parse((PACKAGE / f"{name}.py").read_text()).body:
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 1 and node.module in HUB_PAIR, (name, ast.unparse(node))
                continue
            else:
                continue
            assert roots <= allowed, (name, ast.unparse(node))


@pytest.mark.slow
def test_a_regular_install_renders_a_card_and_dry_runs_a_push(tmp_path):
    """`pip install .` (a wheel, not editable): the `dwatt` command works outside the repository, and the card
    template and the seqeval metric module are package data, found without the repo."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    project = tmp_path / "project"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, project / name)
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheel_dir, project]
    subprocess.run(build, check=True, cwd=tmp_path)
    (wheel,) = wheel_dir.glob("dwatt-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True, cwd=tmp_path)
    run_dir = tmp_path / "run"
    from test_hub import make_run

    make_run(run_dir)
    # The installed copy and its `dwatt` command, from a folder outside the repository; the editable install's
    # source folder is not on the path.
    env = {"PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "PATH": f"{site / 'bin'}:/usr/bin:/bin",
           "HOME": str(tmp_path)}  # fmt: skip
    where = subprocess.run(
        [sys.executable, "-c", "import dwatt, evaluate; from dwatt.evaluate_metrics import SEQEVAL; "
         "print(dwatt.__file__); evaluate.load(SEQEVAL, keep_in_memory=True)"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert where.returncode == 0 and where.stdout.strip().startswith(str(site)), where.stderr[-3000:]
    completed = subprocess.run(
        [str(site / "bin" / "dwatt"), "push", str(run_dir), "--repo_id", "you/tiny", "--dry_run"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "README.md" in completed.stdout
    card = (run_dir / "hub" / "README.md").read_text()
    assert "trust_remote_code=True" in card and "you/tiny" in card
    listed = subprocess.run([str(site / "bin" / "dwatt"), "--help"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert listed.returncode == 0 and "ner" in listed.stdout and "sweep" in listed.stdout


@pytest.mark.parametrize("script", sorted(path.name for path in (ROOT / "scripts").glob("*.py")))
def test_every_script_help_works(script):
    """`--help` of every script exits 0 (a bare % in a help text once crashed analyze_layers.py --help)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True, timeout=120, env=env
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "usage:" in completed.stdout
