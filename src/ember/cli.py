"""The `ember` command: serving, administration and the engine's own commands."""

from __future__ import annotations

import typer

from ember.engine.cli import app as engine_app

app = typer.Typer(help="Ember: custom image models behind a Firefly-compatible API.", no_args_is_help=True)
app.add_typer(engine_app, name="engine")


def main() -> None:
    app()
