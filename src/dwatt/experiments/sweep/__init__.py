"""The few-shot sweep: runner, results store, test-split evaluator, summary and plots."""
