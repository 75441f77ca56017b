"""Dev-only tools: the embedded platform behind ``make run`` and its private files
(:mod:`~mlplatform.dev.embedded`), the closed-loop driver and its report
(:mod:`~mlplatform.dev.closed_loop`), ``mlplatform run``/``stop`` and docker-compose's
generated ``.env`` (:mod:`~mlplatform.dev.commands`), the local Slack webhook sink and a small
Airflow REST client. Workers and the serving image do not install this package."""
