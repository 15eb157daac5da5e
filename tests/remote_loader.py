"""Run as `python -I remote_loader.py SPEC.json`: load checkpoints with trust_remote_code while `dwatt`
cannot be imported, and write their outputs. Used by the remote-code tests in a fresh process."""

import importlib.abc
import json
import sys


class _BlockDwatt(importlib.abc.MetaPathFinder):
    """An editable install puts dwatt on sys.path through site-packages, which -I keeps: block it."""

    def find_spec(self, name, path=None, target=None):
        if name == "dwatt" or name.startswith("dwatt."):
            raise ImportError(f"{name} is blocked in this test process")
        return None


sys.meta_path.insert(0, _BlockDwatt())

import torch  # noqa: E402
import transformers  # noqa: E402

try:
    import dwatt  # noqa: F401
except ImportError:
    pass
else:
    sys.exit("dwatt is importable in the remote-code process")

spec = json.load(open(sys.argv[1]))
inputs = {name: torch.tensor(value) for name, value in spec["inputs"].items()}
results = {"transformers_version": transformers.__version__}
for checkpoint, auto_name in spec["loads"]:
    model = getattr(transformers, auto_name).from_pretrained(checkpoint, trust_remote_code=True).eval()
    if spec.get("save_to"):  # re-save a remotely loaded model, as fine-tuning a Hub checkpoint does
        model.save_pretrained(spec["save_to"])
    with torch.no_grad():
        output = model(**inputs)
    first = output.logits if hasattr(output, "logits") else output.last_hidden_state
    results[f"{checkpoint}:{auto_name}"] = {
        "class": type(model).__name__,
        "module": type(model).__module__,
        "output": first.tolist(),
        "no_split_modules": sorted(model._no_split_modules or []),
    }
json.dump(results, open(spec["result"], "w"))
