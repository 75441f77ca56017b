"""AWS Lambda function: forward SNS notifications (CloudWatch alarms, budget warnings) to Slack.

Subscribed to the alerts topic by the alerts module. The webhook is the Airflow connection
in Secrets Manager that the DAGs' alerts use (``SLACK_SECRET_ARN``), so one secret holds the
Slack webhook for both. A secret without a value yet (the webhook is put after the first
apply) drops the message with a log line instead of failing and retrying. Standard library
only: the function ships as this one file (``slack_forwarder.zip`` next to it).
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

DEFAULT_HOST = "https://hooks.slack.com/services"
# A full URL in the connection (Slack's, or a local sink's in tests) is used as it is.
URL_SCHEMES = ("https://", "http://")
STATE_ICONS = {"ALARM": ":red_circle:", "OK": ":large_green_circle:", "INSUFFICIENT_DATA": ":white_circle:"}


def webhook_url(secret: str) -> str | None:
    """The webhook URL in an Airflow ``slackwebhook`` connection (JSON or URI form), or None."""
    try:
        connection = json.loads(secret)
    except ValueError:
        return secret if secret.startswith(URL_SCHEMES) else None
    token = str(connection.get("password") or "")
    if token.startswith(URL_SCHEMES):
        return token
    host = str(connection.get("host") or DEFAULT_HOST).rstrip("/")
    return f"{host}/{token.lstrip('/')}" if token else None


def text(subject: str | None, message: str) -> str:
    """One Slack message for one SNS notification: alarms get their state, reason and endpoint."""
    try:
        alarm = json.loads(message)
    except ValueError:
        alarm = None
    if not isinstance(alarm, dict) or "AlarmName" not in alarm:
        return f"*{subject}*\n{message}" if subject else message
    state = str(alarm.get("NewStateValue", "?"))
    dimensions = (alarm.get("Trigger") or {}).get("Dimensions") or []
    where = ", ".join(f"{d.get('name')}={d.get('value')}" for d in dimensions if isinstance(d, dict))
    lines = [
        f"{STATE_ICONS.get(state, '')} *{alarm['AlarmName']}* is {state}".strip(),
        str(alarm.get("NewStateReason", "")),
    ]
    if where:
        lines.append(where)
    return "\n".join(line for line in lines if line)


def read_secret(secret_id: str) -> str | None:
    import boto3  # in the Lambda runtime

    client = boto3.client("secretsmanager")
    try:
        return str(client.get_secret_value(SecretId=secret_id)["SecretString"])
    except client.exceptions.ResourceNotFoundException:
        return None  # the secret exists but has no value yet


def post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    """Post each SNS record of ``event`` to the Slack webhook; return how many were posted."""
    secret = read_secret(os.environ["SLACK_SECRET_ARN"])
    url = webhook_url(secret) if secret else None
    records = [r["Sns"] for r in event.get("Records", []) if "Sns" in r]
    if url is None:
        print(f"no Slack webhook in {os.environ['SLACK_SECRET_ARN']} yet: {len(records)} message(s) dropped")
        return {"posted": 0, "dropped": len(records)}
    for record in records:
        post(url, {"text": text(record.get("Subject"), str(record.get("Message", "")))})
    return {"posted": len(records), "dropped": 0}
