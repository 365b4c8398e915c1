"""`ember engine toy …`: render the toy world, pretrain the `toy` base model and its shape classifier."""

from __future__ import annotations

import typer

app = typer.Typer(help="The toy world and its base model.", no_args_is_help=True)
