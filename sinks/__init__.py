"""What goes out: PostgreSQL (stores, work queues, migrations), alert routing, the channels,
and remediations' commands and HTTP calls.

- ``postgres``: the event store, the analysis and alert queues, issue administration, migrations
- ``routing``: the routes file and which receivers an alert's labels reach
- ``channels``: Slack, email and PagerDuty behind one interface
- ``remediation``: the runner of remediations (a command without a shell, or an HTTP call)
"""
