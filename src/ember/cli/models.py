"""`ember models create|upload|captions|train|publish|share|export`: a custom model's lifecycle over the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from ember.cli.jobs import DEFAULT_URL, ClientIdOption, DataDirOption, SecretOption, UrlOption, sdk_client
from ember.client import FINAL_STATUSES, EmberClient, EmberError, JobFailed, ModelsApi

TRAINING_WAIT_S = 7 * 3600.0  # longer than the default training time limit (6 h)

models_app = typer.Typer(help="Custom models: create, add images, caption, train, publish, share, export.",
                         no_args_is_help=True)
console = Console(stderr=True)
out = Console()


def follow_training(client: EmberClient, job_id: str, poll_s: float = 0.5) -> dict[str, Any]:
    """Follow a training job with a progress bar (step, loss, time left) until it ends: from its event stream,
    or by polling where the stream cannot be read. JobFailed unless it succeeded."""
    columns = (
        TextColumn("[bold]training"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("training", total=100, detail="queued")
        for status in client.follow(job_id, poll_s=poll_s, timeout_s=TRAINING_WAIT_S):
            training = status.get("training") or {}
            detail = status["status"]
            if training.get("totalSteps"):
                detail = f"step {training.get('step', 0)}/{training['totalSteps']}"
                if training.get("loss") is not None:
                    detail += f" · loss {float(training['loss']):.4f}"
                progress.update(task, total=training["totalSteps"], completed=training.get("step", 0), detail=detail)
            else:
                progress.update(task, completed=status.get("progress") or 0, detail=detail)
            if status["status"] in FINAL_STATUSES:
                if status["status"] != "succeeded":
                    raise JobFailed(status)
                progress.update(task, completed=progress.tasks[0].total)
                return status
    raise JobFailed({"jobId": job_id, "status": "unknown", "message": "the job's status could not be followed"})


def _api(url: str, client_id: str | None, client_secret: str | None, data_dir: Path | None) -> ModelsApi:
    return ModelsApi(sdk_client(url, client_id, client_secret, data_dir))


def _fail(error: EmberError) -> typer.Exit:
    console.print(f"[red]{error}[/red]")
    return typer.Exit(1)


def _print_images(images: list[dict[str, Any]]) -> None:
    table = Table("id", "file", "caption", "problems")
    for image in images:
        problems = "; ".join(issue["message"] for issue in image.get("errors", []))
        table.add_row(image.get("id") or "(not added)", image["filename"], image.get("caption") or "",
                      f"[red]{problems}[/red]" if problems else "")
    out.print(table)


AssetArgument = Annotated[str, typer.Argument(help="The model's asset id (urn:aaid:sc:…).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]


@models_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Display name.")],
    mode: Annotated[str, typer.Option("--mode", help="subject or style.")] = "subject",
    concept: Annotated[str, typer.Option("--concept", help="Concept word (subject mode).")] = "",
    base_model: Annotated[str | None, typer.Option("--base-model", help="Base model name.")] = None,
    project_id: Annotated[str | None, typer.Option("--project-id", help="Project to save the model to.")] = None,
    sample_prompt: Annotated[str | None, typer.Option("--sample-prompt", help="Sample prompt.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a draft custom model and print its asset id."""
    try:
        model = _api(url, client_id, client_secret, data_dir).create(
            displayName=name, trainingMode=mode, conceptId=concept, projectId=project_id,
            baseModel={"name": base_model} if base_model else None, samplePrompt=sample_prompt,
        )
    except EmberError as error:
        raise _fail(error) from None
    typer.echo(json.dumps(model) if as_json else model["assetId"])


@models_app.command("upload")
def upload(
    asset_id: AssetArgument,
    files: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, WebP).", exists=True, dir_okay=False)],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add training images; each is listed with its automatic caption and any problem found."""
    try:
        outcomes = _api(url, client_id, client_secret, data_dir).upload(
            asset_id, [(path.name, path.read_bytes()) for path in files]
        )
    except EmberError as error:
        raise _fail(error) from None
    if as_json:
        typer.echo(json.dumps(outcomes))
    else:
        _print_images(outcomes)
    if any(outcome.get("errors") for outcome in outcomes):
        raise typer.Exit(3)


@models_app.command("captions")
def captions(
    asset_id: AssetArgument,
    set_caption: Annotated[
        list[str] | None, typer.Option("--set", help="IMAGE_ID=caption (repeat for several).")
    ] = None,
    delete: Annotated[list[str] | None, typer.Option("--delete", help="IMAGE_ID to delete (repeatable).")] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List the training images with their captions and problems; edit captions or delete images first."""
    api = _api(url, client_id, client_secret, data_dir)
    try:
        for assignment in set_caption or []:
            image_id, separator, text = assignment.partition("=")
            if not separator:
                raise typer.BadParameter(f"use IMAGE_ID=caption, not {assignment!r}", param_hint="--set")
            api.set_caption(asset_id, image_id.strip(), text)
        for image_id in delete or []:
            api.delete_image(asset_id, image_id.strip())
        images = api.images(asset_id)
    except EmberError as error:
        raise _fail(error) from None
    if as_json:
        typer.echo(json.dumps(images))
    else:
        _print_images(images)


@models_app.command("train")
def train(
    asset_id: AssetArgument,
    sample_prompt: Annotated[str | None, typer.Option("--sample-prompt", help="Set the sample prompt first.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Training steps (default: preset).")] = None,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate", help="Learning rate.")] = None,
    rank: Annotated[int | None, typer.Option("--rank", min=1, help="LoRA rank.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Training seed.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job with a progress bar.")] = True,
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Check the training rules and train; with --wait (default), show progress until the model is ready."""
    api = _api(url, client_id, client_secret, data_dir)
    try:
        if sample_prompt is not None:
            api.update(asset_id, samplePrompt=sample_prompt)
        accepted = api.train(asset_id, steps=steps, learningRate=learning_rate, rank=rank, seed=seed)
        typer.echo(accepted["jobId"])
        if wait:
            follow_training(api.client, accepted["jobId"])
            model = api.get(asset_id)
            console.print(f"[green]Trained:[/green] {model['displayName']} version {model['version']}")
    except EmberError as error:
        raise _fail(error) from None


@models_app.command("publish")
def publish(
    asset_id: AssetArgument,
    unpublish: Annotated[bool, typer.Option("--unpublish", help="Unpublish instead.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Publish even though the model's check after training failed.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Publish a trained model (or unpublish it)."""
    try:
        model = _api(url, client_id, client_secret, data_dir).publish(asset_id, published=not unpublish, force=force)
    except EmberError as error:
        raise _fail(error) from None
    typer.echo(f"{model['assetId']} {model['publishedState']}")


@models_app.command("share")
def share(
    asset_id: AssetArgument,
    principal: Annotated[str, typer.Argument(help="Technical account id or email, or a user's email.")],
    role: Annotated[str, typer.Option("--role", help="user (list, generate) or editor (also edit, train).")] = "user",
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Share a model with a principal of another organization."""
    try:
        shared = _api(url, client_id, client_secret, data_dir).share(asset_id, principal, role)
    except EmberError as error:
        raise _fail(error) from None
    typer.echo(f"shared with {shared['principal']} as {shared['role']}")


@models_app.command("export")
def export(
    asset_id: AssetArgument,
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the .safetensors file.")],
    kohya: Annotated[bool, typer.Option("--kohya", help="kohya format (ComfyUI, AUTOMATIC1111).")] = False,
    url: UrlOption = DEFAULT_URL,
    client_id: ClientIdOption = None,
    client_secret: SecretOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Download the current version's LoRA (diffusers format unless --kohya)."""
    try:
        data = _api(url, client_id, client_secret, data_dir).weights(asset_id, kohya)
    except EmberError as error:
        raise _fail(error) from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(data)
    typer.echo(f"{out_path} ({len(data)} bytes)")
