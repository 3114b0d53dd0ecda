"""`python -m portal` is the `conecta` command."""

from portal.cli import main

main(prog_name="conecta")
