"""The package's commands, one module each with a `main(argv)`: run as `dwatt <command>`, `python -m dwatt
<command>` or `python scripts/<module>.py` (the repository's thin wrappers). Every one ends the same way on
errors (`dwatt.cli.command`): a one-line message and exit status 2 for bad arguments, 1 for other failures."""
