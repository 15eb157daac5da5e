"""Experiments: the few-shot sweep, the layer analysis, statistics, plots, budgets and overhead."""
