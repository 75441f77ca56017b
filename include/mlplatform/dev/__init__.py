"""Dev-only tools: the embedded platform behind ``make run``, the closed-loop driver, the
local Slack webhook sink, a small Airflow REST client, and the private files (secrets
written 0600, the generated ``.env`` docker-compose takes its passwords from). Workers and
the serving image do not install this package."""
