"""The `banyan` command: the composition root above every package. `main.py` puts the groups
together, each group's commands in a module of their own (routes, cutover, outbox, flows,
reconcile, slo, exceptions, schedules); the scanner's and the events' commands stay beside them
(`inventory_scan/cli.py`, `events/cli.py`)."""
