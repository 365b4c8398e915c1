"""`ember webhooks add|list|remove|secret`: an organization's webhook endpoints from a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ember.cli.jobs import DEFAULT_URL, ClientIdOption, DataDirOption, SecretOption, UrlOption, console, sdk_client
from ember.client import EmberClient, EmberError

webhooks_app = typer.Typer(help="Webhook endpoints that hear about every job of the organization.",
                           no_args_is_help=True)
EventsOption = Annotated[
    list[str] | None,
    typer.Option("--event", help="start, progress or completed; repeat for several (default: completed)."),
]


@contextmanager
def _client(url: str, client_id: str | None, client_secret: str | None, data_dir: Path | None) -> Iterator[EmberClient]:
    """An SDK client whose API errors end the command with the error's message and exit status 1."""
    with sdk_client(url, client_id, client_secret, data_dir) as client:
        try:
            yield client
        except EmberError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None


@webhooks_app.command("add")
def add(
    target: Annotated[str, typer.Argument(help="The receiver's http(s) URL.")],
    event: EventsOption = None,
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register an endpoint; prints its id and its whsec_ signing secret (shown only this once)."""
    with _client(url, client_id, client_secret, data_dir) as client:
        created = client.add_webhook(target, event)
    typer.echo(f"{created['id']} {created['secret']}")


@webhooks_app.command("list")
def list_endpoints(
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The organization's endpoints, one per line: id, URL, events, creation time (never their secrets)."""
    with _client(url, client_id, client_secret, data_dir) as client:
        endpoints = client.webhooks()
    for endpoint in endpoints:  # tab-separated, so scripts can cut it
        typer.echo("\t".join((endpoint["id"], endpoint["url"], ",".join(endpoint["events"]), endpoint["createdAt"])))


@webhooks_app.command("remove")
def remove(
    webhook_id: Annotated[str, typer.Argument(help="The endpoint's id (from `ember webhooks list`).")],
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Remove an endpoint; its pending deliveries are dropped."""
    with _client(url, client_id, client_secret, data_dir) as client:
        client.remove_webhook(webhook_id)
    typer.echo(f"removed {webhook_id}")


@webhooks_app.command("secret")
def secret(
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Print the secret that signs the webhooks named in requests (`webhook` in a request body)."""
    with _client(url, client_id, client_secret, data_dir) as client:
        typer.echo(client.webhook_secret())
