"""``python -m distill`` is ``python -m distill.run``."""

from distill.shell.cli import run_cli
from distill.run import main

run_cli(main)
