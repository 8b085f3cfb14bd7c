"""What goes out: PostgreSQL (stores, work queues, migrations), alert routing, the channels,
the forges, and remediations' commands and HTTP calls.

- ``postgres``: the event store, the analysis and alert queues, issue administration, migrations
- ``routing``: the routes file and which receivers an alert's labels reach
- ``channels``: Slack, email and PagerDuty behind one interface
- ``remediation``: the runner of remediations (a command without a shell, or an HTTP call)
- ``forges``: fixes applied, verified and committed in git worktrees of their own, delivered as
  a branch, a push, a GitHub or GitLab pull request or a patch file; reverts
"""
