"""Jobs: job rows and their states (`records`), the typed payloads a job carries (`payloads`), its event log and
webhooks (`events`, `outbox`, `webhooks`, `webhook_delivery`), and dispatch over Ray with recovery (`dispatch`).

It imports neither `ember.api` nor `ember.custom_models`: the dispatcher is handed what it must call when a
training job ends, and the webhook sender how to render a job's status (docs/architecture.md)."""
