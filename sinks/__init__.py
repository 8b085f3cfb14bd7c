"""What goes out: PostgreSQL (stores, work queues, migrations), alert routing, and the channels.

- ``postgres``: the event store, the analysis and alert queues, issue administration, migrations
- ``routing``: the routes file and which receivers an alert's labels reach
- ``channels``: Slack, email and PagerDuty behind one interface
"""
