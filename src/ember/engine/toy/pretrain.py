"""Pretraining of the `toy` base model on the toy world: VAE first, then the UNet on cached latents; resumable."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ember.engine.toy.world import SEEN_PAIRS, free_colour_pictures, polygon_pictures, random_scenes, render

if TYPE_CHECKING:
    import torch

# stage ("vae", "unet" or "decoder"), step, total steps, latest loss
PretrainProgress = Callable[[str, int, int, float], None]


class PretrainConfigMismatchError(ValueError):
    """A checkpoint in the work directory was made with other settings than the ones asked for now."""


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides the pretrained weights; the same config and seed give the same model."""

    seed: int = 0
    scenes: int = 16_000
    vae_steps: int = 1_200
    vae_batch: int = 32
    vae_lr: float = 2e-3
    # Pictures in random colours the VAE also learns (the UNet never sees them): a custom style may need them.
    vae_free_colour_pictures: int = 8_000
    unet_steps: int = 3_500
    unet_batch: int = 64
    unet_lr: float = 1e-3
    warmup_steps: int = 100
    caption_dropout: float = 0.1
    ema_decay: float = 0.999
    # Last, optionally, the VAE's decoder alone (the encoder, hence the latents and the UNet, stay as they are)
    # learns to draw random polygons besides the world. Off by default: measured, it did not help the decoder
    # draw shapes other than the world's (docs/toy.md, "The decoder stage").
    decoder_steps: int = 0
    decoder_batch: int = 32
    decoder_lr: float = 1e-3
    decoder_polygon_pictures: int = 16_000


def _pixels(images: list[Any]) -> torch.Tensor:
    import numpy as np
    import torch

    array = np.stack([np.asarray(image, dtype=np.uint8) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def _as_input(batch: torch.Tensor) -> torch.Tensor:
    return batch.float() / 127.5 - 1.0


def _save_atomically(state: dict[str, Any], path: Path) -> None:
    import torch

    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)


def _cosine_lr(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Pretraining:
    """One pretraining run in a work directory; `run()` picks up from the last checkpoint there."""

    CHECKPOINT_SECONDS = 60.0

    def __init__(
        self,
        work_dir: Path,
        config: PretrainConfig,
        progress: PretrainProgress | None = None,
        threads: int = 2,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.config = config
        self.threads = threads
        self.progress = progress or (lambda stage, step, total, loss: None)
        self.checkpoint_path = self.work_dir / "checkpoint.pt"
        self.latents_path = self.work_dir / "latents.pt"

    def run(self, out_dir: Path) -> dict[str, Any]:
        """Train (or resume), then write the half-precision pipeline and a record of the run into `out_dir`."""
        import torch

        from ember.engine.toy import model as toy_model

        torch.set_num_threads(self.threads)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        state = self._load_checkpoint()
        started = time.monotonic()
        tokenizer = toy_model.build_tokenizer(self.work_dir / "tokenizer")
        text_encoder = toy_model.new_text_encoder(tokenizer)
        vae = toy_model.new_vae()
        scenes = list(random_scenes(self.config.seed, self.config.scenes, pairs=SEEN_PAIRS))
        pixels = _pixels([render(scene) for scene in scenes])

        free = _pixels(list(free_colour_pictures(self.config.seed + 1, self.config.vae_free_colour_pictures)))
        if state.get("stage", "vae") == "vae":
            state = self._train_vae(vae, torch.cat([pixels, free]), state)
        vae.load_state_dict(state["vae"])
        vae.register_to_config(scaling_factor=state["scaling_factor"])
        latents = self._cached_latents(vae, pixels, state["scaling_factor"])

        captions = sorted({scene.caption for scene in scenes})
        caption_index = {caption: i for i, caption in enumerate(captions)}
        with torch.no_grad():
            ids = tokenizer(
                [*captions, ""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
            ).input_ids
            embeddings = text_encoder(ids)[0]
        labels = torch.tensor([caption_index[scene.caption] for scene in scenes])

        unet = toy_model.new_unet()
        ema = toy_model.new_unet()
        if state["stage"] == "unet":
            state = self._train_unet(unet, ema, latents, embeddings, labels, state)
            state.update(stage="decoder", step=0)
            _save_atomically(state, self.checkpoint_path)
        ema.load_state_dict(state["ema"])
        if state["stage"] == "decoder" and state.get("step", 0) < self.config.decoder_steps:
            polygons = _pixels(list(polygon_pictures(self.config.seed + 2, self.config.decoder_polygon_pictures)))
            state = self._train_decoder(vae, torch.cat([pixels, free, polygons]), state)
        vae.load_state_dict(state["vae"])

        pipeline = toy_model.assemble_pipeline(vae, ema, text_encoder, tokenizer)
        out_dir = Path(out_dir)
        toy_model.save_committed_pipeline(pipeline, out_dir / "pipeline")
        record = {
            "config": asdict(self.config),
            "final_losses": state.get("final_losses", {}),
            "scaling_factor": state["scaling_factor"],
            "seconds_this_run": round(time.monotonic() - started, 1),
            "unet_training_seconds": round(state.get("seconds", 0.0), 1),
            "decoder_training_seconds": round(state.get("decoder_seconds", 0.0), 1),
        }
        (out_dir / "pretraining.json").write_text(json.dumps(record, indent=2) + "\n")
        return record

    def start_from_pipeline(self, pipeline_dir: Path) -> None:
        """Seed an empty work directory with a pretrained pipeline (as `run` writes it), as if its VAE and UNet
        stages had just finished here: `run` then trains only the stages after them (the decoder's). A work
        directory that already has a checkpoint is left as it is, so the same command resumes."""
        import torch
        from diffusers import AutoencoderKL, UNet2DConditionModel

        if self.checkpoint_path.exists():
            return
        pipeline_dir = Path(pipeline_dir)
        vae: Any = AutoencoderKL.from_pretrained(str(pipeline_dir / "vae"), dtype=torch.float32)
        unet: Any = UNet2DConditionModel.from_pretrained(str(pipeline_dir / "unet"), dtype=torch.float32)
        record_path = pipeline_dir.parent / "pretraining.json"
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "stage": "decoder",
            "step": 0,
            "config": asdict(self.config),
            "vae": vae.state_dict(),
            "unet": unet.state_dict(),
            "ema": unet.state_dict(),
            "scaling_factor": float(vae.config.scaling_factor),
            "final_losses": {k: v for k, v in record.get("final_losses", {}).items() if k != "decoder"},
            "seconds": float(record.get("unet_training_seconds", 0.0)),
            "started_from": str(pipeline_dir),
        }
        _save_atomically(state, self.checkpoint_path)

    def _load_checkpoint(self) -> dict[str, Any]:
        import torch

        if not self.checkpoint_path.is_file():
            return {"stage": "vae", "config": asdict(self.config)}
        state: dict[str, Any] = torch.load(self.checkpoint_path, weights_only=False)
        wanted = asdict(self.config)
        # Only fields of the current config count: older checkpoints may also record how they were run.
        if {key: state["config"].get(key) for key in wanted} != wanted:
            raise PretrainConfigMismatchError(
                f"{self.checkpoint_path} was made with {state['config']}; use another work directory"
            )
        return state

    def _train_vae(self, vae: Any, pixels: torch.Tensor, state: dict[str, Any]) -> dict[str, Any]:
        import torch

        cfg = self.config
        optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr)
        step = state.get("step", 0)
        if "vae" in state:
            vae.load_state_dict(state["vae"])
            optimizer.load_state_dict(state["vae_optimizer"])
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + step)
        last_save = time.monotonic()
        vae.train()
        loss_value = float("nan")
        while step < cfg.vae_steps:
            for group in optimizer.param_groups:
                group["lr"] = _cosine_lr(step, cfg.vae_steps, cfg.warmup_steps // 4, cfg.vae_lr)
            index = torch.randint(0, len(pixels), (cfg.vae_batch,), generator=generator)
            batch = _as_input(pixels[index])
            posterior = vae.encode(batch).latent_dist
            reconstruction = vae.decode(posterior.sample(generator)).sample
            loss = torch.nn.functional.mse_loss(reconstruction, batch) + 1e-6 * posterior.kl().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = loss.item()
            self.progress("vae", step, cfg.vae_steps, loss_value)
            if time.monotonic() - last_save > self.CHECKPOINT_SECONDS and step < cfg.vae_steps:
                state.update(step=step, vae=vae.state_dict(), vae_optimizer=optimizer.state_dict())
                _save_atomically(state, self.checkpoint_path)
                last_save = time.monotonic()
        vae.eval()
        with torch.no_grad():
            sample = _as_input(pixels[: min(len(pixels), 2048)])
            spread = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in sample.split(256)]).std()
        state = {
            "stage": "unet",
            "step": 0,
            "config": state["config"],
            "vae": vae.state_dict(),
            "scaling_factor": float(1.0 / spread),
            "final_losses": {"vae": loss_value},
        }
        _save_atomically(state, self.checkpoint_path)
        return state

    def _train_decoder(self, vae: Any, pixels: torch.Tensor, state: dict[str, Any]) -> dict[str, Any]:
        """The decoder (and post_quant_conv) alone learns to draw the pictures back from the frozen encoder's
        latents: the latents, their scale and the UNet trained on them are unchanged."""
        import torch

        cfg = self.config
        vae.load_state_dict(state["vae"])
        vae.requires_grad_(False)
        trained = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
        for parameter in trained:
            parameter.requires_grad_(True)
        optimizer = torch.optim.AdamW(trained, lr=cfg.decoder_lr)
        step = state.get("step", 0)
        if "decoder_optimizer" in state:
            optimizer.load_state_dict(state["decoder_optimizer"])
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + 11 + step)
        last_save = time.monotonic()
        started = time.monotonic()
        vae.eval()
        vae.decoder.train()
        loss_value = float("nan")
        while step < cfg.decoder_steps:
            for group in optimizer.param_groups:
                group["lr"] = _cosine_lr(step, cfg.decoder_steps, cfg.warmup_steps // 4, cfg.decoder_lr)
            index = torch.randint(0, len(pixels), (cfg.decoder_batch,), generator=generator)
            batch = _as_input(pixels[index])
            with torch.no_grad():
                latent = vae.encode(batch).latent_dist.sample(generator)
            reconstruction = vae.decode(latent).sample
            loss = torch.nn.functional.mse_loss(reconstruction, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = loss.item()
            self.progress("decoder", step, cfg.decoder_steps, loss_value)
            if time.monotonic() - last_save > self.CHECKPOINT_SECONDS or step == cfg.decoder_steps:
                self._save_stage(
                    state, "decoder", loss_value, started,
                    step=step, vae=vae.state_dict(), decoder_optimizer=optimizer.state_dict(),
                )
                started = last_save = time.monotonic()
        vae.eval()
        vae.requires_grad_(False)
        return state

    def _save_stage(self, state: dict[str, Any], stage: str, loss: float, started: float, **saved: Any) -> None:
        """Checkpoint a stage: what it saved, its training seconds since `started` and its latest loss."""
        seconds = "seconds" if stage == "unet" else f"{stage}_seconds"
        state.update(saved, **{seconds: state.get(seconds, 0.0) + time.monotonic() - started})
        state.setdefault("final_losses", {})[stage] = loss
        _save_atomically(state, self.checkpoint_path)

    def _cached_latents(self, vae: Any, pixels: torch.Tensor, scaling_factor: float) -> torch.Tensor:
        import torch

        if self.latents_path.is_file():
            cached: torch.Tensor = torch.load(self.latents_path)
            return cached
        vae.eval()
        with torch.no_grad():
            latents = torch.cat(
                [vae.encode(_as_input(chunk)).latent_dist.mode() for chunk in pixels.split(256)]
            ) * scaling_factor
        torch.save(latents, self.latents_path)
        return latents

    def _train_unet(
        self,
        unet: Any,
        ema: Any,
        latents: torch.Tensor,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        state: dict[str, Any],
    ) -> dict[str, Any]:
        import torch
        from diffusers import DDPMScheduler

        from ember.engine.toy.model import scheduler_config

        cfg = self.config
        noise_schedule: Any = DDPMScheduler(
            **{k: v for k, v in scheduler_config().items() if k not in ("set_alpha_to_one", "steps_offset")}
        )
        optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=1e-2)
        step = state.get("step", 0)
        if "unet" in state:
            unet.load_state_dict(state["unet"])
            ema.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["unet_optimizer"])
        else:
            ema.load_state_dict(unet.state_dict())
        ema.requires_grad_(False)
        unconditional = len(embeddings) - 1
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + 7 + step)
        last_save = time.monotonic()
        started = time.monotonic()
        unet.train()
        loss_value = float("nan")
        while step < cfg.unet_steps:
            for group in optimizer.param_groups:
                group["lr"] = _cosine_lr(step, cfg.unet_steps, cfg.warmup_steps, cfg.unet_lr)
            index = torch.randint(0, len(latents), (cfg.unet_batch,), generator=generator)
            clean = latents[index]
            caption = labels[index].clone()
            caption[torch.rand(cfg.unet_batch, generator=generator) < cfg.caption_dropout] = unconditional
            noise = torch.randn(clean.shape, generator=generator)
            timesteps = torch.randint(
                0, noise_schedule.config.num_train_timesteps, (cfg.unet_batch,), generator=generator
            )
            noisy = noise_schedule.add_noise(clean, noise, timesteps)
            prediction = unet(noisy, timesteps, embeddings[caption]).sample
            loss = torch.nn.functional.mse_loss(prediction, noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            optimizer.step()
            step += 1
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for average, current in zip(ema.parameters(), unet.parameters(), strict=True):
                    average.lerp_(current, 1 - decay)
            loss_value = loss.item()
            self.progress("unet", step, cfg.unet_steps, loss_value)
            if time.monotonic() - last_save > self.CHECKPOINT_SECONDS or step == cfg.unet_steps:
                self._save_stage(
                    state, "unet", loss_value, started,
                    step=step, unet=unet.state_dict(), ema=ema.state_dict(), unet_optimizer=optimizer.state_dict(),
                )
                started = last_save = time.monotonic()
        return state
