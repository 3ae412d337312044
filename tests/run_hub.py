"""`python -m tests.run_hub serve …`: the real CLI with the test-only loopback channel kind registered."""

import sys

import tests.loopback  # noqa: F401
from hub.cli import main

sys.exit(main())
