"""Allow ``python3 -m memccp_py``."""

import sys

from memccp_py.cli import main

sys.exit(main())
