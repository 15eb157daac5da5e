"""Push a trained run folder (what `scripts/run_ner.py` writes) to the Hugging Face Hub with its model card.

    dwatt push outputs/run_ner-dwatt-minilm-wnut16 --repo_id you/dwatt-minilm-wnut16 --dry_run
    dwatt push outputs/run_ner-dwatt-minilm-wnut16 --repo_id you/dwatt-minilm-wnut16 \
        --private --revision v1 --commit_message "DWAtt on WNUT-16, K=200"

The push-ready copy (weights, config with the full auto_map and no local paths, the two .py files, the
tokenizer, metrics, README.md card and figure) is written to `<run>/hub` (or `--export_dir`) and kept.
Checkpoints, optimizer states and `training_args.bin` are never pushed. Only NER runs (token classifiers) are
pushed: the card and the serving files are a token classifier's. Log in first (`hf auth login`)
or set `HF_TOKEN`.
"""

import argparse
import logging

from ..cli import command
from ..hub.push import push_run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="the run folder (run_ner.py's --output_dir)")
    parser.add_argument("--repo_id", required=True, help="namespace/name on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repo private (if it does not exist)")
    parser.add_argument("--revision", default=None, help="branch to push to (created if new); default: main")
    parser.add_argument("--commit_message", default=None)
    parser.add_argument("--dry_run", action="store_true", help="export and list the files; upload nothing")
    parser.add_argument("--export_dir", default=None, help="where to write the push-ready folder (default <run>/hub)")
    parser.add_argument("--license", default=None, help="licence id for the card (default: the base model's)")
    parser.add_argument("--base_model", default=None, help="Hub id of the backbone, if the run did not record it")
    parser.add_argument(
        "--language",
        default=None,
        help="ISO 639 code of the data's language for the card (default: en for the bundled WNUT-16, else left out)",
    )
    return parser.parse_args(argv)


@command
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s - %(name)s - %(message)s")
    result = push_run(
        args.output_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        dry_run=args.dry_run,
        export_dir=args.export_dir,
        license=args.license,
        base_model=args.base_model,
        language=args.language,
    )
    action = "Would commit" if args.dry_run else "Committed"
    print(f"{action} to {result.repo_id}@{result.revision} from {result.folder}:")
    for name in result.files:
        print(f"  {name}  ({(result.folder / name).stat().st_size:,} bytes)")
    if result.commit:
        print(f"commit {result.commit}  {result.url or ''}")
