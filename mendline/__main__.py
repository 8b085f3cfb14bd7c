"""``python -m mendline``: the command line."""

from mendline.cli import main

raise SystemExit(main())
