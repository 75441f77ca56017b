"""``python -m mlplatform.serving``: run the serving app."""

import sys

from mlplatform.serving import main

sys.exit(main())
