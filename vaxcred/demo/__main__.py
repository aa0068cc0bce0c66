"""``python -m vaxcred.demo``."""

import sys

from vaxcred.demo import main

sys.exit(main())
