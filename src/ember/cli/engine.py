"""`ember engine …`: the engine used directly on local folders (imports torch only inside commands)."""

from __future__ import annotations

from pathlib import Path

import typer

from ember.cli.pool import serve_pool, stop_pool
from ember.engine.toy.cli import app as toy_app
from ember.media import IMAGE_TYPES

app = typer.Typer(help="Run the engine directly: generate, train, caption, check datasets.", no_args_is_help=True)
app.add_typer(toy_app, name="toy")
app.command("serve")(serve_pool)
app.command("stop")(stop_pool)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
KOHYA_FILE = "lora.kohya.safetensors"
FORMATS = {mimetype.removeprefix("image/"): (mimetype, ext) for mimetype, (_, ext) in IMAGE_TYPES.items()}


def _base_model(name: str | None) -> str:
    """The named base model, or the configured default one (`default_base_model`, `toy` unless set)."""
    if name:
        return name
    from ember.config import load_settings

    return load_settings().default_base_model


_BASE_MODEL_HELP = "Base model name (see `ember engine models`); default: the configured default_base_model."


def _model_dir(model_dir: Path | None) -> Path:
    if model_dir is not None:
        return model_dir
    from ember.config import load_settings

    configured = load_settings().model_dir
    assert configured is not None
    return configured


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _parse_lora(value: str) -> tuple[Path, float]:
    """`path` or `path:weight`."""
    path, _, weight = value.rpartition(":")
    if path and weight.replace(".", "", 1).replace("-", "", 1).isdigit():
        return Path(path), float(weight)
    return Path(value), 1.0


@app.command()
def generate(
    prompt: str = typer.Argument(..., help="What to draw."),
    out_dir: Path = typer.Option(Path("outputs"), "--out", help="Folder for the images."),
    base_model: str | None = typer.Option(None, help=_BASE_MODEL_HELP),
    model_dir: Path | None = typer.Option(None, help="Base model weights; default from Ember's settings."),
    seed: list[int] = typer.Option([0], help="One image per seed (1–4)."),
    width: int = typer.Option(1024),
    height: int = typer.Option(1024),
    negative_prompt: str | None = typer.Option(None),
    content_class: str | None = typer.Option(None, help="photo or art."),
    visual_intensity: int | None = typer.Option(None, min=2, max=10),
    style: list[str] = typer.Option([], help="Style preset id (repeatable)."),
    style_strength: int = typer.Option(50, min=1, max=100),
    style_image: Path | None = typer.Option(None, help="Style reference image."),
    structure_image: Path | None = typer.Option(None, help="Structure reference image (image-to-image)."),
    structure_strength: int | None = typer.Option(None, min=0, max=100),
    lora: list[str] = typer.Option([], help="LoRA file, optionally PATH:WEIGHT (repeatable)."),
    image_format: str = typer.Option("jpeg", "--format", help="jpeg, png or webp."),
    steps: int | None = typer.Option(None, min=1),
    guidance_scale: float | None = typer.Option(None),
    device: str | None = typer.Option(None, help="cuda, mps or cpu; chosen automatically when absent."),
) -> None:
    """Generate images from a prompt on a local base model."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ember.engine.generate import Engine
    from ember.engine.types import EngineError, GenerationRequest, LoraRef
    from ember.engine.types import Progress as StepReport

    if image_format not in FORMATS:
        raise typer.BadParameter("--format must be jpeg, png or webp")
    base_model = _base_model(base_model)
    mimetype, suffix = FORMATS[image_format]
    loras = []
    for index, value in enumerate(lora):
        path, weight = _parse_lora(value)
        loras.append(LoraRef(key=f"{index}:{path.resolve()}", path=path, weight=weight))
    request = GenerationRequest(
        base_model=base_model,
        prompt=prompt,
        negative_prompt=negative_prompt,
        seeds=list(seed),
        width=width,
        height=height,
        content_class=content_class,
        visual_intensity=visual_intensity,
        style_presets=list(style),
        style_strength=style_strength,
        style_image=style_image.read_bytes() if style_image else None,
        structure_image=structure_image.read_bytes() if structure_image else None,
        structure_strength=structure_strength,
        loras=loras,
        mimetype=mimetype,
        steps=steps,
        guidance_scale=guidance_scale,
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("loading", total=None)

        def on_step(event: StepReport) -> None:
            bar.update(task, description=event.message or "generating", completed=event.step, total=event.total)

        try:
            images = Engine(_model_dir(model_dir), device=device).generate(request, progress=on_step)
        except EngineError as error:
            raise typer.BadParameter(str(error)) from error
    out_dir.mkdir(parents=True, exist_ok=True)
    for image in images:
        target = out_dir / f"seed-{image.seed}.{suffix}"
        target.write_bytes(image.data)
        typer.echo(f"{target} ({image.width}×{image.height})")


def _load_examples(folder: Path, captioner_name: str, mode: str, concept: str | None) -> list[tuple[str, bytes, str]]:
    """(name, bytes, caption) per image: a sidecar `<name>.txt` wins, else the captioner writes one."""
    from ember.engine.captioning import caption_images, get_captioner
    from ember.engine.dataset import open_image

    files = _image_files(folder)
    captioner = None
    rows = []
    for file in files:
        data = file.read_bytes()
        sidecar = file.with_suffix(".txt")
        if sidecar.is_file() and sidecar.read_text().strip():
            caption = sidecar.read_text().strip()
        else:
            captioner = captioner or get_captioner(captioner_name)
            caption = caption_images([open_image(data)], captioner, mode, concept)[0]
        rows.append((file.name, data, caption))
    return rows


@app.command()
def train(
    dataset: Path = typer.Argument(..., help="Folder of images, with optional `<image>.txt` captions."),
    out_dir: Path = typer.Option(Path("training"), "--out", help="Work folder: checkpoints, samples, the LoRA."),
    base_model: str | None = typer.Option(None, help=_BASE_MODEL_HELP),
    model_dir: Path | None = typer.Option(None, help="Base model weights; default from Ember's settings."),
    mode: str = typer.Option("subject", help="subject or style."),
    concept: str | None = typer.Option(None, help="The concept word (subject mode)."),
    sample_prompt: str | None = typer.Option(None, help="Prompt for sample images during training."),
    steps: int | None = typer.Option(None, min=1),
    learning_rate: float | None = typer.Option(None),
    rank: int | None = typer.Option(None, min=1),
    resolution: int | None = typer.Option(None),
    seed: int | None = typer.Option(None),
    captioner: str = typer.Option("auto", help="auto, builtin, florence2 or blip (for images without .txt)."),
    skip_checks: bool = typer.Option(False, help="Train even when the dataset breaks the rules."),
    device: str | None = typer.Option(None),
) -> None:
    """Train a LoRA on a folder of images; resumes from the latest checkpoint in --out."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ember.engine.captioning import check_caption
    from ember.engine.dataset import check_dataset
    from ember.engine.registry import get_base_model
    from ember.engine.train import preset_for, train_lora
    from ember.engine.types import EngineError, TrainingExample
    from ember.engine.types import Progress as StepReport

    base_model = _base_model(base_model)
    spec = get_base_model(base_model)
    rows = _load_examples(dataset, captioner, mode, concept)
    report = check_dataset([(name, data) for name, data, _ in rows], spec)
    problems = [f"{image.name}: {issue.code}: {issue.message}" for image in report.images for issue in image.errors]
    problems += [f"dataset: {issue.code}: {issue.message}" for issue in report.errors]
    problems += [
        f"{name}: {issue.code}: {issue.message}"
        for name, _, caption in rows
        for issue in check_caption(caption, mode, concept)
    ]
    for problem in problems:
        typer.echo(problem, err=True)
    if problems and not skip_checks:
        raise typer.Exit(code=1)
    config = preset_for(base_model, mode).with_overrides(
        steps=steps, learning_rate=learning_rate, rank=rank, resolution=resolution, seed=seed
    )
    examples = [TrainingExample(image=data, caption=caption) for _, data, caption in rows]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[loss]}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("preparing", total=config.steps, loss="")

        def on_step(event: StepReport) -> None:
            loss = f"loss {event.loss:.4f}" if event.loss is not None else ""
            bar.update(task, description=event.message, completed=event.step, loss=loss)

        try:
            result = train_lora(
                base_model,
                examples,
                config,
                out_dir,
                model_dir=_model_dir(model_dir),
                mode=mode,
                concept=concept,
                sample_prompt=sample_prompt,
                progress=on_step,
                device=device,
            )
        except EngineError as error:
            raise typer.BadParameter(str(error)) from error
    if result.resumed_from:
        typer.echo(f"resumed from step {result.resumed_from}")
    typer.echo(f"LoRA: {result.lora_path}")
    # The one kohya converter is torch-free and shared with the API's weights download.
    from ember.lora_formats import to_kohya

    kohya_path = result.lora_path.with_name(KOHYA_FILE)
    kohya_path.write_bytes(to_kohya(result.lora_path.read_bytes()))
    typer.echo(f"kohya: {kohya_path}")


@app.command()
def caption(
    folder: Path = typer.Argument(..., help="Folder of images."),
    captioner: str = typer.Option("auto", help="auto, builtin, florence2 or blip."),
    mode: str = typer.Option("style", help="subject binds the concept word into every caption."),
    concept: str | None = typer.Option(None),
    write: bool = typer.Option(False, help="Write `<image>.txt` beside each image."),
) -> None:
    """Caption every image in a folder."""
    from ember.engine.captioning import caption_images, get_captioner
    from ember.engine.dataset import InvalidImage, open_image

    chosen = get_captioner(captioner)
    for file in _image_files(folder):
        try:
            image = open_image(file.read_bytes())
        except InvalidImage as error:
            typer.echo(f"{file.name}: cannot read: {error}", err=True)
            continue
        text = caption_images([image], chosen, mode, concept)[0]
        if write:
            file.with_suffix(".txt").write_text(text + "\n")
        typer.echo(f"{file.name}\t{text}")


@app.command()
def check(
    folder: Path = typer.Argument(..., help="Folder of training images."),
    base_model: str | None = typer.Option(None, help=_BASE_MODEL_HELP),
    min_side: int | None = typer.Option(None, help="Override the base model's minimum side."),
    min_count: int = typer.Option(10),
    max_count: int = typer.Option(30),
) -> None:
    """Check a training set against the dataset rules; exit code 1 when any rule is broken."""
    from ember.engine.dataset import DatasetRules, check_dataset
    from ember.engine.registry import get_base_model

    rules = DatasetRules(min_side=min_side, min_count=min_count, max_count=max_count)
    files = [(p.name, p.read_bytes()) for p in _image_files(folder)]
    report = check_dataset(files, get_base_model(_base_model(base_model)), rules)
    for image in report.images:
        if image.ok:
            typer.echo(f"ok\t{image.name}\t{image.width}×{image.height}")
        for issue in image.errors:
            typer.echo(f"{issue.code}\t{image.name}\t{issue.message}")
    for issue in report.errors:
        typer.echo(f"{issue.code}\t-\t{issue.message}")
    if not report.ok:
        raise typer.Exit(code=1)


MODEL_COLUMNS = ("name", "family", "display name", "sizes", "training", "weights")


@app.command()
def models(
    model_dir: Path | None = typer.Option(None, help="Where base model weights live; default from Ember's settings."),
) -> None:
    """List the base models Ember knows: which can be trained, and whose weights are on this machine."""
    from ember.engine.models import choose_device, choose_dtype, missing_weights_reason
    from ember.engine.registry import list_base_models

    device = choose_device()
    weights_dir = _model_dir(model_dir)
    typer.echo(f"device: {device} ({str(choose_dtype(device)).removeprefix('torch.')})")
    typer.echo("\t".join(MODEL_COLUMNS))
    for spec in list_base_models():
        sizes = ", ".join(f"{w}×{h}" for w, h in spec.native_resolutions)
        training = "trainable" if spec.trainable else f"generation only ({spec.untrainable_reason or 'no recipe'})"
        if spec.builder is not None:
            weights = "built in"
        elif missing_weights_reason(spec, weights_dir) is None:
            weights = "present"
        else:
            weights = f"missing: run `ember engine pull {spec.name}`"
        typer.echo(f"{spec.name}\t{spec.family}\t{spec.display_name}\t{sizes}\t{training}\t{weights}")


@app.command()
def pull(
    name: str = typer.Argument(..., help="Base model name (see `ember engine models`)."),
    source: str | None = typer.Option(None, help="A local pipeline folder or mirror, or a hub id; default: the hub."),
    model_dir: Path | None = typer.Option(None, help="Where base model weights live; default from Ember's settings."),
) -> None:
    """Fetch a base model's weights into the model directory and check that they are the right pipeline."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from ember.engine.models import pull_model
    from ember.engine.types import EngineError

    with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task(name, total=None)
        try:
            path = pull_model(
                name,
                _model_dir(model_dir),
                source,
                on_bytes=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except EngineError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=1) from error
    typer.echo(f"{name}: {path}")
