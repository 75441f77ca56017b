"""The Airflow face: the conventions every generated DAG shares and the MLOps page."""
