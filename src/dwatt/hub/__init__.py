"""Sharing on the Hub: the run record, the model card and its figure, the push."""
