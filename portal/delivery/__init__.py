"""The workers that deliver what the domain queued: outbox emails are rendered (`emails`) and sent
through SMTP or to files (`transports`) by `worker`; webhook deliveries are signed and POSTed to
the platform by `webhooks`, over `webhook_http`'s SSRF-safe client. `flask outbox work` (or `send`)
runs both.

Nothing of the domain imports this package: the domain writes outbox rows (`portal.outbox`) and
events (`portal.events`); the CLI runs the workers, and the back office previews an email with
`emails.render`.
"""
