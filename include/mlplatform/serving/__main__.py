"""``python -m mlplatform.serving``: run the serving app."""

import signal
import sys

# A SIGTERM while the app's libraries import is a normal stop too; run.main keeps it so.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

from mlplatform.serving.run import main  # noqa: E402

sys.exit(main())
