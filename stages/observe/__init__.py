"""Observability: the run history (`history`, `runs`), progress, alerts, the status view
(`status`, `python -m stages.observe.status`), the dashboard and its logs API."""
