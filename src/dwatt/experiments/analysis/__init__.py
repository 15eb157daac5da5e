"""Layer analysis of a trained DWAtt model: depth weights, ablations, first-k probes, report."""
