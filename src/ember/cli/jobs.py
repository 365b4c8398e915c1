"""`ember generate` and `ember jobs status|cancel`: the job API from a terminal, through the Python SDK."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from ember.client import ApiCallFailed, EmberClient, EmberError

jobs_app = typer.Typer(help="Follow and cancel jobs.", no_args_is_help=True)
console = Console(stderr=True)
CREDENTIALS_FILE = "credentials.json"

UrlOption = Annotated[str, typer.Option("--url", envvar="EMBER_URL", help="Base URL of the Ember API.")]
ClientIdOption = Annotated[
    str | None, typer.Option("--client-id", envvar="EMBER_CLIENT_ID", help="API client id.", show_default=False)
]
SecretOption = Annotated[
    str | None,
    typer.Option("--client-secret", envvar="EMBER_CLIENT_SECRET", help="API client secret.", show_default=False),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="EMBER_DATA_DIR", show_default=False,
                 help="Where to find credentials.json when no client id/secret is given (default ./data)."),
]
DEFAULT_URL = "http://127.0.0.1:8000"


def sdk_client(url: str, client_id: str | None, client_secret: str | None, data_dir: Path | None) -> EmberClient:
    """A client from explicit credentials, else from the first-start credentials file of a local server."""
    if not (client_id and client_secret):
        path = (data_dir or Path(os.environ.get("EMBER_DATA_DIR", "data"))) / CREDENTIALS_FILE
        if not path.is_file():
            console.print("Give --client-id and --client-secret (or EMBER_CLIENT_ID / EMBER_CLIENT_SECRET).")
            raise typer.Exit(2)
        stored = json.loads(path.read_text())
        client_id, client_secret = stored["client_id"], stored["client_secret"]
    assert client_id and client_secret
    return EmberClient(url, client_id, client_secret)


def _fail(error: EmberError) -> None:
    console.print(f"[red]{error}[/red]")
    raise typer.Exit(1)


def parse_size(value: str | None) -> dict[str, int] | None:
    if value is None:
        return None
    width, _, height = value.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise typer.BadParameter("use WIDTHxHEIGHT, e.g. 1024x1024")
    return {"width": int(width), "height": int(height)}


def seeds_for(seed: list[int], variations: int | None) -> list[int] | None:
    """One --seed with --variations N means N consecutive seeds from it; several --seed are taken as given."""
    if not seed:
        return None
    if len(seed) == 1 and variations and variations > 1:
        return [seed[0] + offset for offset in range(variations)]
    return seed


def generate(
    prompt: Annotated[str, typer.Argument(help="What to generate.")],
    model: Annotated[str | None, typer.Option("--model", help="Custom model asset id.")] = None,
    variations: Annotated[int | None, typer.Option("--variations", min=1, max=4, help="Number of images.")] = None,
    seed: Annotated[list[int] | None, typer.Option("--seed", help="Seed (repeat for several).")] = None,
    size: Annotated[str | None, typer.Option("--size", help="WIDTHxHEIGHT from the supported list.")] = None,
    mimetype: Annotated[str, typer.Option("--mimetype", help="image/jpeg, image/png or image/webp.")] = "image/jpeg",
    model_version: Annotated[str | None, typer.Option("--model-version", help="x-model-version.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the images.")] = Path("."),
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Submit a generation job, show its progress, and download its images."""
    seeds = seeds_for(seed or [], variations)
    fields: dict[str, Any] = {"seeds": seeds, "size": parse_size(size)}
    if seeds is None:
        fields["numVariations"] = variations
    with sdk_client(url, client_id, client_secret, data_dir) as client:
        try:
            accepted = client.generate_async(
                prompt, custom_model_id=model, model_version=model_version, mimetype=mimetype, **fields
            )
            console.print(f"job {accepted['jobId']}")
            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                          console=console) as bar:
                task = bar.add_task("pending", total=100)

                def show(status: dict[str, Any]) -> None:
                    bar.update(task, completed=status.get("progress", 0), description=status["status"])

                finished = client.wait(accepted["jobId"], on_status=show)
            paths = client.save_outputs(finished, out)
        except EmberError as error:
            _fail(error)
    for path in paths:
        typer.echo(str(path))


@jobs_app.command("status")
def status(
    job_id: Annotated[str, typer.Argument(help="The job id (urn:ff:jobs:…).")],
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Print a job's status as JSON."""
    with sdk_client(url, client_id, client_secret, data_dir) as client:
        try:
            typer.echo(json.dumps(client.status(job_id), indent=2))
        except EmberError as error:
            _fail(error)


@jobs_app.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job id (urn:ff:jobs:…).")],
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Cancel a job (running work stops at its next step)."""
    with sdk_client(url, client_id, client_secret, data_dir) as client:
        try:
            typer.echo(json.dumps(client.cancel(job_id)))
        except ApiCallFailed as error:
            _fail(error)
