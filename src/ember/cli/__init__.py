"""The `ember` command: serving, administration and the engine's own commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from ember.cli.demo import demo
from ember.cli.engine import app as engine_app
from ember.cli.jobs import generate, jobs_app
from ember.cli.models import models_app
from ember.cli.webhooks import webhooks_app
from ember.config import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

app = typer.Typer(help="Ember: custom image models behind a Firefly-compatible API.", no_args_is_help=True)
app.add_typer(engine_app, name="engine")
clients_app = typer.Typer(help="API clients (client credentials for the HTTP API).", no_args_is_help=True)
users_app = typer.Typer(help="Users of the web UI.", no_args_is_help=True)
config_app = typer.Typer(help="Effective settings.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(users_app, name="users")
app.add_typer(config_app, name="config")
app.add_typer(jobs_app, name="jobs")
app.command("generate")(generate)
app.add_typer(models_app, name="models")
app.add_typer(webhooks_app, name="webhooks")
app.command("demo")(demo)

CREDENTIALS_FILE = "credentials.json"
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="EMBER_DATA_DIR", help="Data directory (default ./data).", show_default=False),
]
console = Console()
err_console = Console(stderr=True)


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    return load_settings(data_dir=data_dir, **overrides)


def _migrated_sessions(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    from ember.data_dir import prepare_data_dir
    from ember.store.database import migrate, open_engine, session_factory, setup_lock

    prepare_data_dir(settings.data_dir)
    engine = open_engine(settings.database_url)
    with setup_lock(engine):
        migrate(engine)
    return engine, session_factory(engine)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (host:port); default: start a local Ray; 'disabled': none."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Migrate the database, then serve the HTTP API (creating a first client on an empty store)."""
    import uvicorn

    from ember.api import create_app
    from ember.api.request_context import configure_logging
    from ember.data_dir import private_umask
    from ember.identity import create_client, has_organizations, write_private_file
    from ember.store.database import setup_lock, transaction

    private_umask()
    settings = _settings(data_dir, host=host, port=port, ray_address=ray_address)
    configure_logging(settings.log_level)
    engine, sessions = _migrated_sessions(settings)
    with setup_lock(engine), transaction(sessions) as session:  # replicas starting together: one creates it
        first = None if has_organizations(session) else create_client(session, "default")
    engine.dispose()
    if first is not None:
        path = settings.data_dir / CREDENTIALS_FILE
        write_private_file(path, json.dumps(first.as_dict(), indent=2) + "\n")
        console.print("[bold]First start: created organization 'default' and this API client.[/bold]")
        console.print("The secret is shown once; it is also in " + str(path) + " (mode 0600).")
        console.print_json(json.dumps(first.as_dict()))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@clients_app.command("create")
def clients_create(
    org: Annotated[str, typer.Option(help="Organization name (created when missing).")],
    project: Annotated[str | None, typer.Option(help="Project name (created when missing).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the credentials as JSON.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Create an API client and print its credentials (the secret is shown only now)."""
    from ember.identity import create_client
    from ember.store.database import transaction

    engine, sessions = _migrated_sessions(_settings(data_dir))
    with transaction(sessions) as session:
        credentials = create_client(session, org, project)
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(credentials.as_dict()))
        return
    for key, value in credentials.as_dict().items():
        typer.echo(f"{key}: {value}")
    err_console.print("Keep the client secret now: it cannot be shown again.")


@clients_app.command("list")
def clients_list(
    org: Annotated[str | None, typer.Option(help="Only this organization.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """List API clients (never their secrets)."""
    from ember.identity import list_clients

    engine, sessions = _migrated_sessions(_settings(data_dir))
    with sessions() as session:
        rows = [
            {
                "client_id": client.client_id,
                "org": client.organization.name,
                "technical_account_id": client.technical_account_id,
                "technical_account_email": client.technical_account_email,
                "created_at": client.created_at.isoformat(),
                "revoked": client.revoked_at is not None,
            }
            for client in list_clients(session, org)
        ]
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    columns = ("client_id", "org", "technical_account_id", "created_at", "revoked")
    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(row[column]) for column in columns))
    console.print(table)


@clients_app.command("rotate")
def clients_rotate(
    client_id: Annotated[str, typer.Argument(help="The client to give a new secret.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the credentials as JSON.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Give a client a new secret; the old secret and all its tokens stop working."""
    from ember.identity import UnknownClient, rotate_client
    from ember.store.database import transaction

    engine, sessions = _migrated_sessions(_settings(data_dir))
    try:
        with transaction(sessions) as session:
            credentials = rotate_client(session, client_id)
    except UnknownClient:
        err_console.print(f"No active client {client_id!r}.")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(credentials.as_dict()))
    else:
        for key, value in credentials.as_dict().items():
            typer.echo(f"{key}: {value}")


@clients_app.command("revoke")
def clients_revoke(
    client_id: Annotated[str, typer.Argument(help="The client to disable for good.")],
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a client: its secret and tokens stop working at once."""
    from ember.identity import UnknownClient, revoke_client
    from ember.store.database import transaction

    engine, sessions = _migrated_sessions(_settings(data_dir))
    try:
        with transaction(sessions) as session:
            revoke_client(session, client_id)
    except UnknownClient:
        err_console.print(f"No active client {client_id!r}.")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(f"revoked {client_id}")


@users_app.command("create")
def users_create(
    org: Annotated[str, typer.Option(help="Organization name (created when missing).")],
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(help="Password.", prompt=True, hide_input=True)],
    data_dir: DataDirOption = None,
) -> None:
    """Create a web UI user in an organization."""
    from ember.identity import UserExists, create_user
    from ember.store.database import transaction

    engine, sessions = _migrated_sessions(_settings(data_dir))
    try:
        with transaction(sessions) as session:
            user = create_user(session, org, email, password)
            created = {"email": user.email, "org": org, "id": str(user.id)}
    except UserExists:
        err_console.print(f"A user {email!r} exists already.")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(json.dumps(created))


@config_app.command("show")
def config_show(data_dir: DataDirOption = None) -> None:
    """Print the effective settings (secrets masked)."""
    typer.echo(json.dumps(_settings(data_dir).masked(), indent=2))


def main() -> None:
    app()
