"""``python -m mlplatform.serving``: run the serving app."""

import logging
import os
import signal
import sys

# A SIGTERM while the app's libraries import is a normal stop too; process.main keeps it so.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

from mlplatform.serving.process import main  # noqa: E402

code = main()
# The shutdown is done (requests drained, prediction log flushed, threads told to stop):
# leave without tearing down the interpreter's modules, which takes seconds on a busy
# machine and would only run library exit hooks that have nothing left to do.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
