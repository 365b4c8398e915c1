"""The custom-model lifecycle (SPEC §2): `lifecycle` (find, create, edit, delete, publish, weights, and the
domain errors), `images` (training images and their checks), `training` (training rules and jobs) and `shares`.

Every rule lives here once; routes call these functions with a session and map the domain errors to the wire
(`ember.api.errors`). It may import `ember.store`, `ember.blobs`, `ember.config`, `ember.jobs` (records and
payloads) and, inside functions, the engine's torch-free modules; never `ember.api`."""
