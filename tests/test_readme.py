"""The README's code runs: every ```python block, and the ```bash blocks in order in one folder (with the bundled
model for a Hub id, the CoNLL fixture for the user's files, and 2 training steps). ```shell blocks need the
network, GPUs or hours and are shown only; a block of any other language fails here until it is classified."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dwatt.assets import bundled_minilm_path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("fixtures")
README = ROOT / "README.md"
SHOWN_ONLY = {"shell", "bibtex", "text"}
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCK.findall(README.read_text()) if lang == language]


def environment(tmp_path: Path) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), TOKENIZERS_PARALLELISM="false")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` is this venv's
    return env


def test_every_block_is_run_or_declared_shown_only():
    languages = {lang for lang, _ in BLOCK.findall(README.read_text())}
    assert languages <= {"python", "bash"} | SHOWN_ONLY, languages
    assert blocks("python") and blocks("bash")


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_block_runs(index, tmp_path):
    code = blocks("python")[index]
    completed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment(tmp_path),
                               capture_output=True, text=True, timeout=600)  # fmt: skip
    assert completed.returncode == 0, f"README python block {index}:\n{code}\n{completed.stderr[-3000:]}"


def as_test_command(code: str) -> str:
    """The README's shell lines with the bundled model, the CoNLL fixture and a 2-step budget."""
    code = code.replace("bert-base-cased", str(bundled_minilm_path()))
    code = code.replace("train.conll", str(FIXTURES / "conll2003_iob1_sample.txt"))
    for name in ("dev.conll", "test.conll"):
        code = code.replace(name, str(FIXTURES / "conll2003_iob1_dev.txt"))
    return re.sub(r"--max_steps \d+", "--max_steps 2", code)


def test_bash_blocks_run_in_order(tmp_path):
    for name in ("scripts", "configs"):
        (tmp_path / name).symlink_to(ROOT / name)
    for index, code in enumerate(blocks("bash")):
        command = as_test_command(code)
        completed = subprocess.run(["bash", "-e", "-c", command], cwd=tmp_path, env=environment(tmp_path),
                                   capture_output=True, text=True, timeout=900)  # fmt: skip
        assert completed.returncode == 0, f"README bash block {index}:\n{command}\n{completed.stderr[-3000:]}"
    assert (tmp_path / "outputs" / "my-ner" / "model.safetensors").is_file()
