"""Dev-only tools: the embedded platform behind ``make run``, the closed-loop driver, the
local Slack webhook sink and a small Airflow REST client. Workers and the serving image do
not install this package."""
