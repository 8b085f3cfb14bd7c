"""``python -m mendline``: the command line."""

from mendline.cli import console

console()
