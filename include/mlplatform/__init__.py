"""mlplatform: everything the DAGs, plugins and the command line run.

DAG files only wire these functions into tasks; the same code runs from the
``mlplatform`` command, in tests and in the serving app.
"""

__version__ = "0.1.0"
