"""Telling staff when something needs them: the outbox's delivery (`delivery`), the scans that find what is due,
overdue or alarming (`watch`), and failed jobs (`jobs`).

What causes a notification writes it to the outbox in its own transaction (`callbackd.store.outbox`);
`callbackd notify --once` and the workers' tick deliver it afterwards through the notifier plugins.
"""
