"""The engine worker side: the Ray actor that holds the engine, the training runner, and content credentials.

It may import `ember.jobs` (the job state machine and payloads), `ember.custom_models`, `ember.store`,
`ember.blobs`, `ember.media`, `ember.safe_fetch` and, inside an actor, `ember.engine`; of the rest of Ember only
`ember.jobs.dispatch` imports it (it starts the actors)."""
