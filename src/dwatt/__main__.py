"""`python -m dwatt <command>`: the same as the `dwatt` command."""

from .cli import main

main()
