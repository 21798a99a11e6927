"""The workers that deliver what the domain queued: outbox emails are rendered (`emails`) and sent
through SMTP or to files (`transports`) by `worker`, run by `flask outbox work` (or `send`).

Nothing of the domain imports this package: the domain writes outbox rows (`portal.outbox`); the
CLI runs the worker, and the back office previews an email with `emails.render`.
"""
