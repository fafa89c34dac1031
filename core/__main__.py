"""``python -m callshield``: the same as the ``callshield`` command."""

from callshield.cli import main

main(prog_name="callshield")
