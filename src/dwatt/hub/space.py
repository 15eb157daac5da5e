"""A Gradio Space folder for a DWAtt NER model (`dwatt space`): the app, the `layer-map` pipeline it draws with,
the model it loads, its requirements and the Space's card. Push the folder as a Space (sdk: gradio), or run
`python app.py` in it locally."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .serving import SERVING_FILES

APP = Path(__file__).with_name("serving") / "app.py"
LAYER_MAP = next(path for path in SERVING_FILES if path.name == "layer_map.py")
#: What the app imports (torch is transformers' backend; matplotlib draws the heatmap).
REQUIREMENTS = ("torch", "transformers>=5", "gradio>=5", "matplotlib")
WRITTEN = ("app.py", "layer_map.py", "space.json", "requirements.txt", "README.md")
CARD = """---
title: {title_yaml}
sdk: gradio
app_file: app.py
pinned: false
---

# {title}

Named entities and Depth-Wise Attention's per-word weights over the encoder's layers, for
[{model}](https://huggingface.co/{model}) (revision `{revision}`). Written by `dwatt space`; the model's code is
loaded with `trust_remote_code=True` from that revision.
"""


def check_model(model: str, dwatt_only: bool = True) -> None:
    """A local folder must hold a token classifier (a DWAtt one unless `dwatt_only` is false); anything else is taken
    as a Hub repo id. Also what `dwatt tag` checks its checkpoint with."""
    folder = Path(model)
    if not folder.exists():
        if model.count("/") != 1 or model.startswith((".", "/")):
            raise ValueError(f"{model}: no such folder, and not a Hub repo id ('owner/name')")
        return
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{folder}: no config.json; expected a checkpoint folder written by `dwatt ner`")
    check_token_classifier(json.loads(config_path.read_text()), str(config_path), dwatt_only)


def check_token_classifier(config: dict, where: str, dwatt_only: bool = True) -> None:
    """A checkpoint's config (config.json as a dict) must be a token classifier's, and a DWAtt one if `dwatt_only`."""
    if dwatt_only and config.get("model_type") != "dwatt":
        raise ValueError(f"{where}: model_type {config.get('model_type')!r}; expected a DWAtt checkpoint")
    check_architectures(config.get("architectures"), f"{where}: architectures {config.get('architectures')}")


def check_architectures(architectures: list[str] | None, where: str) -> None:
    """`architectures` (a config.json's, or the class an ONNX file was exported from) must name a token classifier:
    a sentence classifier's head, or a bare backbone's random one, would tag words with meaningless labels."""
    if not any("TokenClassification" in str(name) for name in architectures or []):
        raise ValueError(f"{where}; expected a token classifier (a checkpoint written by `dwatt ner`)")


def write_space(model: str, output: str | Path, revision: str | None = None, title: str | None = None) -> list[Path]:
    """Write the Space folder for `model` (a Hub repo id, or a local checkpoint folder to try it locally); a
    folder holding other files than a Space's is refused rather than overwritten."""
    check_model(model)
    local = Path(model).exists()
    model = str(Path(model).resolve()) if local else model  # the app runs from the Space folder
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: is a file; expected a folder for the Space")
    others = sorted(path.name for path in output.iterdir() if path.name not in WRITTEN) if output.is_dir() else []
    if others:
        raise ValueError(f"{output}: holds {others[:3]}; expected an empty folder or a Space written by dwatt")
    output.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(APP, output / "app.py")
    shutil.copyfile(LAYER_MAP, output / "layer_map.py")
    (output / "space.json").write_text(json.dumps({"model": model, "revision": revision}, indent=2) + "\n")
    (output / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    title = title or f"DWAtt NER: {Path(model).name if local else model}"
    card = CARD.format(title=title, title_yaml=json.dumps(title), model=model, revision=revision or "main")
    (output / "README.md").write_text(card)  # a JSON string is a YAML string: a title with ':' stays one
    return [output / name for name in WRITTEN]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def screenshot(folder: str | Path, image: str | Path, browser: str = "chromium", timeout: float = 180.0) -> str:
    """Run the Space in `folder` (python app.py), open it in headless Chromium (Playwright driving the system's
    browser), wait until the example sentence's entities and heatmap are drawn, save a PNG of the page and return
    the rendered page's text."""
    import os
    import subprocess
    import sys
    import tempfile
    import time
    import urllib.request

    from playwright.sync_api import sync_playwright

    executable = shutil.which(browser)
    if executable is None:
        raise FileNotFoundError(f"no {browser!r} on PATH; expected Debian's chromium package (apt install chromium)")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = tempfile.TemporaryFile("w+")  # not a pipe: a pipe nobody reads fills up and stalls the server
    server = subprocess.Popen([sys.executable, "app.py"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{folder}/app.py did not serve {url}: {log.read()[-2000:]}") from None
                time.sleep(0.5)
        with sync_playwright() as playwright:
            page = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"]).new_page(
                viewport={"width": 1100, "height": 1000}
            )
            page.goto(url)
            page.wait_for_selector("img[src^='data:image']", timeout=timeout * 1000)  # the heatmap, drawn on load
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(2000)  # gradio fades new outputs in
            Path(image).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(image), full_page=True)
            return page.inner_text("body")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
