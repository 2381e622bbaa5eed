"""Run memccp from this checkout (when memccp-py is not installed)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memccp_py.cli import main  # noqa: E402

sys.exit(main())
