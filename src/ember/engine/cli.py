"""`ember engine …`: the engine used directly on local folders (imports torch only inside commands)."""

from __future__ import annotations

import typer

from ember.engine.toy.cli import app as toy_app

app = typer.Typer(help="Run the engine directly: generate, train, caption, check datasets.", no_args_is_help=True)
app.add_typer(toy_app, name="toy")
