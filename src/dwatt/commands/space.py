"""Write a Gradio Space for a DWAtt NER model: type a sentence, see its entities and a per-word heatmap of the
depth attention.

    dwatt space you/dwatt-ner --output space/            # then push space/ as a Space (sdk: gradio)
    dwatt space outputs/my-ner --output space/ && (cd space && python app.py)   # try it locally
    dwatt space outputs/my-ner --output space/ --screenshot space.png   # and a picture of the page (Chromium)
"""

import argparse

from ..cli import command
from ..hub.space import screenshot, write_space


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="dwatt space", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("model", help="the model's Hub repo id (or a local checkpoint folder, to try it locally)")
    parser.add_argument("--output", required=True, help="the Space folder to write")
    parser.add_argument("--revision", help="the model revision the Space loads (pin a commit hash)")
    parser.add_argument("--title", help="the Space's title")
    parser.add_argument("--screenshot", help="run the Space, open it in headless Chromium and save the page as PNG")
    args = parser.parse_args(argv)
    for path in write_space(args.model, args.output, args.revision, args.title):
        print(f"written: {path}")
    if args.screenshot:
        screenshot(args.output, args.screenshot)
        print(f"written: {args.screenshot}")
