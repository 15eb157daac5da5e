"""The Gradio Space of `dwatt space`: the folder it writes and what it refuses, the app through its API (as a
client of the running server would call it), and the page rendered in headless Chromium (slow)."""

import json
import shutil
import sys

import pytest
import yaml
from test_hub import run_dir  # noqa: F401  (the module-scoped run folder fixture)

from dwatt.hub.space import WRITTEN, free_port, screenshot, write_space

pytest.importorskip("gradio", reason="the Space's app needs gradio (pip install -e '.[dev]')")


def test_the_space_folder_and_its_card(run_dir, tmp_path):  # noqa: F811
    written = write_space(run_dir, tmp_path / "space", revision="abc123")
    assert sorted(path.name for path in written) == sorted(WRITTEN)
    assert json.loads((tmp_path / "space" / "space.json").read_text()) == {"model": str(run_dir.resolve()),
                                                                          "revision": "abc123"}  # fmt: skip
    front = yaml.safe_load((tmp_path / "space" / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["title"] == "DWAtt NER: tiny-dwatt"
    assert "gradio>=5" in (tmp_path / "space" / "requirements.txt").read_text().split()
    write_space("someone/dwatt-ner", tmp_path / "space")  # rewriting a Space folder is allowed; a repo id is kept
    assert json.loads((tmp_path / "space" / "space.json").read_text())["model"] == "someone/dwatt-ner"


def test_what_the_space_command_refuses(run_dir, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="no such folder, and not a Hub repo id"):
        write_space(str(tmp_path / "missing" / "run"), tmp_path / "space")
    with pytest.raises(ValueError, match="no config.json"):
        write_space(tmp_path, tmp_path / "space")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="model_type 'bert'; expected a DWAtt checkpoint"):
        write_space(tmp_path / "bert", tmp_path / "space")
    (tmp_path / "seq").mkdir()
    (tmp_path / "seq" / "config.json").write_text(
        '{"model_type": "dwatt", "architectures": ["DWAttForSequenceClassification"]}'
    )
    with pytest.raises(ValueError, match="expected a token classifier"):
        write_space(tmp_path / "seq", tmp_path / "space")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"busy: holds \['notes.txt'\]; expected an empty folder"):
        write_space(run_dir, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_the_app_through_its_api(run_dir, tmp_path, monkeypatch):  # noqa: F811
    """Entities, heatmap and data for a sentence, as gradio_client gets them from the running server: every word
    has one weight per fused layer, summing to 1."""
    from gradio_client import Client

    write_space(run_dir, tmp_path / "space")
    monkeypatch.syspath_prepend(str(tmp_path / "space"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    import app  # the written app.py

    demo = app.build_demo(app.load_settings()["model"])
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        highlighted, figure, data = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            "alpha beta gamma delta", api_name="/tag"
        )
    finally:
        demo.close()
        sys.modules.pop("app", None)
        sys.modules.pop("layer_map", None)
    assert "".join(span["token"] for span in highlighted) == "alpha beta gamma delta"
    assert figure["type"] == "matplotlib" and figure["plot"].startswith("data:image/")
    assert data["layers"] == ["embeddings", "layer 1", "layer 2"]
    assert [word["word"] for word in data["words"]] == ["alpha", "beta", "gamma", "delta"]
    for word in data["words"]:
        assert len(word["weights"]) == 3 and sum(word["weights"]) == pytest.approx(1.0, abs=1e-5)
    assert all(entity["entity"] in {"person", "geo-loc"} for entity in data["entities"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium (Debian: apt install chromium)")
def test_the_page_renders_in_headless_chromium(run_dir, tmp_path):  # noqa: F811
    """`python app.py` in the written folder, opened in Chromium: the title, the example sentence's words in the
    entity view and the heatmap are drawn (the PNG is the README's picture when made from the demo checkpoint)."""
    write_space(run_dir, tmp_path / "space")
    text = screenshot(tmp_path / "space", tmp_path / "page.png")
    assert "Depth-Wise Attention NER" in text and "tiny-dwatt" in text
    assert "Kobe" in text and "Entities" in text and "Weight of each layer, per word" in text
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_app_tags_and_maps_every_word_of_a_long_text(run_dir, tmp_path, monkeypatch):  # noqa: F811
    """The tiny model takes 64 positions (and its tokenizer says so): the app's entities and heatmap stopped at the
    first window."""
    model = tmp_path / "model"
    shutil.copytree(run_dir, model)
    tokenizer_config = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "model_max_length": 64}))
    write_space(model, tmp_path / "space")
    monkeypatch.syspath_prepend(str(tmp_path / "space"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    import app  # the written app.py

    words = [f"w{index % 94}" for index in range(300)]
    text = " ".join(words)
    try:
        demo = app.build_demo(app.load_settings()["model"])
        tag = next(function.fn for function in demo.fns.values() if function.api_name == "tag")
        highlighted, _, data = tag(text)
    finally:
        sys.modules.pop("app", None)
        sys.modules.pop("layer_map", None)
    assert [word["word"] for word in data["words"]] == words
    assert all(text[word["start"] : word["end"]] == word["word"] for word in data["words"])
    assert max(entity["end"] for entity in data["entities"]) > len(" ".join(words[:100]))
    assert highlighted["entities"] == data["entities"]
