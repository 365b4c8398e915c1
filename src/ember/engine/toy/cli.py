"""`ember engine toy …`: render the toy world, pretrain the `toy` base model and its shape classifier."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ember.engine.toy.pretrain import PretrainConfig, Pretraining

app = typer.Typer(help="The toy world and its base model.", no_args_is_help=True)

_DEFAULT_WORK = Path(".ember/toy-pretrain")


@app.command()
def render(
    out_dir: Path = typer.Argument(..., help="Folder to write PNG files and their .txt captions into."),
    count: int = typer.Option(16, min=1, help="How many scenes."),
    seed: int = typer.Option(0, help="Same seed, same scenes."),
    shape: str | None = typer.Option(None, help="Only this shape (star included)."),
    colour: str | None = typer.Option(None, help="Only this colour."),
    style: str = typer.Option("plain", help="plain or sepia."),
) -> None:
    """Render captioned toy-world scenes (a training set for a custom model, for instance)."""
    from ember.engine.toy.world import ALL_SHAPES, COLOURS, random_scenes
    from ember.engine.toy.world import render as draw

    pairs = tuple(
        (s, c) for s in ALL_SHAPES for c in COLOURS if (shape in (None, s)) and (colour in (None, c))
    )
    if not pairs:
        raise typer.BadParameter(f"no scenes with shape={shape!r} colour={colour!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, scene in enumerate(random_scenes(seed, count, pairs=pairs, style=style)):
        draw(scene).save(out_dir / f"scene-{i:04d}.png")
        (out_dir / f"scene-{i:04d}.txt").write_text(scene.caption + "\n")
    typer.echo(f"{count} scenes in {out_dir}")


@app.command()
def pretrain(
    work_dir: Path = typer.Option(_DEFAULT_WORK, help="Checkpoints and cached latents; rerun to resume."),
    out_dir: Path | None = typer.Option(None, help="Where the pipeline goes (default: the package's weights)."),
    unet_steps: int = typer.Option(PretrainConfig.unet_steps, min=1),
    vae_steps: int = typer.Option(PretrainConfig.vae_steps, min=1),
    decoder_steps: int = typer.Option(
        PretrainConfig.decoder_steps, min=0, help="Steps of the decoder stage (0, the default: no decoder stage)."
    ),
    scenes: int = typer.Option(16_000, min=64),
    seed: int = typer.Option(0),
    threads: int = typer.Option(2, min=1),
    from_pipeline: Path | None = typer.Option(
        None,
        help="Start from this pretrained pipeline folder (its VAE and UNet) in an empty WORK_DIR and train only "
        "the stages after the UNet's.",
    ),
) -> None:
    """Pretrain the `toy` base model (about 45 minutes on one CPU core); resumes from WORK_DIR."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ember.engine.toy.model import WEIGHTS_DIR
    config = PretrainConfig(
        seed=seed, scenes=scenes, vae_steps=vae_steps, unet_steps=unet_steps, decoder_steps=decoder_steps
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, step: int, total: int, loss: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, completed=step - 1, loss=loss)
            bar.update(tasks[stage], completed=step, loss=loss)

        pretraining = Pretraining(work_dir, config, progress=report, threads=threads)
        if from_pipeline is not None:
            pretraining.start_from_pipeline(from_pipeline)
        record = pretraining.run(out_dir or WEIGHTS_DIR)
    typer.echo(json.dumps(record, indent=2))


@app.command("train-classifier")
def train_classifier(
    out_dir: Path | None = typer.Option(None, help="Where the classifier goes (default: the package's weights)."),
    steps: int = typer.Option(600, min=1),
    seed: int = typer.Option(0),
    threads: int = typer.Option(2, min=1),
) -> None:
    """Train the shape classifier used to measure what the toy model draws (about a minute)."""
    from ember.engine.toy.measure import ShapeClassifierConfig, train_shape_classifier
    from ember.engine.toy.model import WEIGHTS_DIR

    accuracy = train_shape_classifier(
        out_dir or WEIGHTS_DIR, ShapeClassifierConfig(steps=steps, seed=seed), threads=threads
    )
    typer.echo(f"held-out accuracy: {accuracy:.3f}")
