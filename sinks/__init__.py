"""What goes out: PostgreSQL (stores, work queues, migrations), alert routing, the channels, and
the forges.

- ``postgres``: the event store, the analysis and alert queues, issue administration, migrations
- ``routing``: the routes file and which receivers an alert's labels reach
- ``channels``: Slack, email and PagerDuty behind one interface
- ``forges``: fixes applied, verified and committed in git worktrees of their own, delivered as
  a branch, a push, a GitHub or GitLab pull request or a patch file; reverts
"""
