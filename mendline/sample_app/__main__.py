"""``python -m mendline.sample_app``: serve the sample shop until SIGTERM or SIGINT."""

import sys

from mendline.sample_app import main

sys.exit(main())
