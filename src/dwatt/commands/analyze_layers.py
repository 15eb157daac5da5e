"""Where each word draws from: fusion-weight maps, layer ablation and first-k-layer inference of a checkpoint.

    dwatt analyze        # outputs/dwatt-minilm-wnut16-k200 on the bundled WNUT-16 test split
    dwatt analyze --model_name_or_path outputs/my-run --output_dir results/analysis/my-run
    dwatt analyze --model_name_or_path outputs/my-run --data_file eng.testb --max_sentences 500

Writes `report.md`, its PNG figures and `analysed_checkpoint.json` (which checkpoint the report is of) to
`--output_dir` (default `results/analysis/<checkpoint folder name>`); a folder holding another checkpoint's
report is refused.
The checkpoint must be a `DWAttForTokenClassification`; the data must use (a subset of) its labels.
All arguments: `dwatt analyze --help`; one JSON file of arguments also works.
"""

import shlex
from pathlib import Path

from ..cli import command
from ..experiments.analysis.probes import FULL, first_k_name
from ..experiments.analysis.report import report_figures
from ..experiments.analysis.run import RECORD_FILE, AnalysisArguments, run_analysis
from ..tasks.arguments import parse_arguments


@command
def main(argv: list[str]) -> None:
    (args,) = parse_arguments((AnalysisArguments,), argv=argv)
    result, report = run_analysis(args, " ".join(["dwatt analyze", *map(shlex.quote, argv)]))
    print(f"\nentity F1: full {result.f1(FULL):.4f}", end="")
    for k in (k for k in result.first_ks if k < result.num_layers):
        speed = f" ({result.timing.speedup(k):.2f}x)" if result.timing else ""
        print(f", first {k}: {result.f1(first_k_name(k)):.4f}{speed}", end="")
    figures = ", ".join(sorted(report_figures(Path(report).parent)))  # those this run wrote (no earlier ones)
    print(f"\nwritten: {report}, {RECORD_FILE} and {figures}" if figures else f"\nwritten: {report} and {RECORD_FILE}")
