"""Metric modules for `evaluate.load(path)`, shipped inside the package so they load offline."""

from pathlib import Path

#: `evaluate.load(SEQEVAL)`: entity-level NER scores with the keys of the Hub's `seqeval` metric.
SEQEVAL = str(Path(__file__).with_name("seqeval"))
