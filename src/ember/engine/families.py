"""How each base-model family trains: its encoders, latents, objective, LoRA targets, sampler and LoRA file.

One class per family, each following diffusers' own DreamBooth-LoRA script for it:
`train_text_to_image_lora.py` (sd), `train_dreambooth_lora_sdxl.py` (sdxl), `train_dreambooth_lora_flux.py`
(flux). `train.train_lora` runs the same loop for all of them; a family only says how a picture becomes a
latent and a caption conditioning, and its objective in the order of diffusers' loop: `add_noise` (noisy latents
and the timesteps the denoiser is told), `predict`, `target`. `FAMILIES` maps the registry's family names to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ember.engine.registry import BaseModelSpec
from ember.engine.types import EngineError

if TYPE_CHECKING:
    import torch


class UnknownFamily(EngineError):
    """A registry family with no training recipe."""


@dataclass
class Conditioning:
    """Per-caption tensors: what the denoiser attends to, and (sdxl, flux) the pooled text embedding."""

    hidden: torch.Tensor
    pooled: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> Conditioning:
        return Conditioning(self.hidden[index], None if self.pooled is None else self.pooled[index])

    @staticmethod
    def concat(parts: list[Conditioning]) -> Conditioning:
        import torch

        pooled = [part.pooled for part in parts]
        return Conditioning(
            torch.cat([part.hidden for part in parts]),
            None if any(p is None for p in pooled) else torch.cat(pooled),  # type: ignore[arg-type]
        )


@dataclass
class Batch:
    """Training examples drawn from the cache: latents sampled from each picture's VAE posterior, the
    conditioning of their captions, and (sdxl) each picture's six size/crop time ids."""

    latents: torch.Tensor
    conditioning: Conditioning
    time_ids: torch.Tensor

    def __len__(self) -> int:
        return len(self.latents)

    @staticmethod
    def concat(parts: list[Batch]) -> Batch:
        """The examples of several batches of one latent size as one batch, in order."""
        import torch

        return Batch(
            torch.cat([part.latents for part in parts]),
            Conditioning.concat([part.conditioning for part in parts]),
            torch.cat([part.time_ids for part in parts]),
        )


def crop_time_ids(original: tuple[int, int], target: tuple[int, int]) -> tuple[int, ...]:
    """SDXL's six size conditions of a picture centre-cropped to `target` (width, height) the way
    `dataset.center_crop_resize` does: original (h, w), the crop's top-left corner (top, left) in the scaled
    picture, and the target (h, w)."""
    width, height = original
    target_width, target_height = target
    scale = max(target_width / width, target_height / height)
    scaled_width = max(target_width, round(width * scale))
    scaled_height = max(target_height, round(height * scale))
    top = (scaled_height - target_height) // 2
    left = (scaled_width - target_width) // 2
    return (height, width, top, left, target_height, target_width)


def flow_sigmas(scheduler_config: Any, u: torch.Tensor, image_seq_len: int) -> torch.Tensor:
    """Noise levels for flow-matching training, shifted as the sampler shifts its schedule: with dynamic
    shifting (FLUX.1-dev) by the image's token count, as `FluxPipeline` computes `mu`; else by `shift`."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    if scheduler_config.get("use_dynamic_shifting", False):
        mu = calculate_shift(
            image_seq_len,
            scheduler_config.get("base_image_seq_len", 256),
            scheduler_config.get("max_image_seq_len", 4096),
            scheduler_config.get("base_shift", 0.5),
            scheduler_config.get("max_shift", 1.15),
        )
        return math.exp(mu) / (math.exp(mu) + (1 / u - 1))
    shift = float(scheduler_config.get("shift", 1.0))
    return shift * u / (1 + (shift - 1) * u)


class Family:
    """The family-specific half of LoRA training; `train_lora` owns the loop, data and checkpoints."""

    denoiser: Any
    vae: Any
    noise_scheduler: Any

    def __init__(
        self, spec: BaseModelSpec, path: Path, device: str, weight_dtype: torch.dtype, training_guidance: float = 1.0
    ) -> None:
        self.spec = spec
        self.path = path
        self.device = device
        self.weight_dtype = weight_dtype
        self.training_guidance = training_guidance

    # Loading, encoding, freeing -------------------------------------------------------------------------
    def size_multiple(self) -> int:
        raise NotImplementedError

    def encode_image(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the VAE posterior of one picture ([1, 3, H, W] in −1…1), in denoiser units."""
        posterior = self.vae.encode(pixels.to(self.device, self.vae.dtype)).latent_dist
        scale = self.vae.config.scaling_factor
        shift = self.vae.config.get("shift_factor") or 0.0
        return ((posterior.mean[0].float() - shift) * scale).cpu(), (posterior.std[0].float() * scale).cpu()

    def encode_captions(self, texts: list[str]) -> Conditioning:
        raise NotImplementedError

    def prepare_sampling(self, prompt: str) -> None:
        """Encode the sample prompt while the text encoders are still loaded (a no-op where they stay)."""

    def free_encoders(self) -> None:
        """After caching: drop the text encoders and move the VAE off the accelerator for the loop."""

    # Training ---------------------------------------------------------------------------------------------
    def lora_targets(self) -> list[str]:
        return list(self.spec.lora_target_modules)

    # The objective, in the order of diffusers' training loop: noise the latents, predict, compare with the
    # target. `timesteps` is whatever the denoiser is told about the noise (DDPM steps, or FLUX's σ).
    def add_noise(
        self, latents: torch.Tensor, noise: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The noisy latents and their timesteps, drawn from `generator`."""
        raise NotImplementedError

    def predict(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, batch: Batch, autocast: torch.dtype | None
    ) -> torch.Tensor:
        """The denoiser's output for the noisy latents, in the latents' layout."""
        raise NotImplementedError

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the denoiser should have predicted."""
        raise NotImplementedError

    # Output -----------------------------------------------------------------------------------------------
    def sample(self, prompt: str, seed: int) -> Any:
        raise NotImplementedError

    def save_lora(self, layers: dict[str, torch.Tensor], metadata: dict[str, Any], target: Path) -> None:
        raise NotImplementedError

    def _free_text_pipeline(self) -> None:
        """Drop the text half of the pipeline and keep the VAE off the accelerator until a sample needs it."""
        del self.text  # type: ignore[attr-defined]  # set by the families that encode with a text pipeline
        if not self.device.startswith("cpu"):
            import torch

            self.vae.to("cpu")
            torch.cuda.empty_cache()

    def _draw_sample(self, pipeline: Any, seed: int, **embeddings: Any) -> Any:
        """One picture at the first native size with the model's default steps and guidance."""
        import torch

        pipeline.set_progress_bar_config(disable=True)
        width, height = self.spec.native_resolutions[0]
        self.vae.to(self.device)
        try:
            with torch.inference_mode():
                return pipeline(
                    **embeddings,
                    num_inference_steps=self.spec.default_steps,
                    width=width,
                    height=height,
                    generator=torch.Generator("cpu").manual_seed(seed),
                    guidance_scale=self.spec.default_guidance,
                ).images[0]
        finally:
            if not self.device.startswith("cpu"):
                self.vae.to("cpu")

    def _autocast(self, autocast: torch.dtype | None) -> Any:
        import torch

        device_type = self.device.split(":")[0]
        return torch.autocast(device_type=device_type, dtype=autocast or torch.float32, enabled=autocast is not None)


class DDPMFamily(Family):
    """The objective of the UNet families (train_text_to_image_lora.py, train_dreambooth_lora_sdxl.py): a
    uniformly drawn DDPM timestep, the scheduler's `add_noise`, and epsilon or v-prediction as its config says."""

    def add_noise(
        self, latents: torch.Tensor, noise: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (len(latents),), generator=generator).long()
        return self.noise_scheduler.add_noise(latents, noise, timesteps), timesteps

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            velocity: torch.Tensor = self.noise_scheduler.get_velocity(latents, noise, timesteps)
            return velocity
        return noise

    def size_multiple(self) -> int:
        vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        unet_factor = 2 ** (len(self.denoiser.config.block_out_channels) - 1)
        return int(vae_factor * unet_factor)


class SDFamily(DDPMFamily):
    """train_text_to_image_lora.py: one CLIP encoder's last hidden states. The text encoder stays loaded: it
    is small, and the sampler uses it."""

    def __init__(
        self, spec: BaseModelSpec, path: Path, device: str, weight_dtype: torch.dtype, training_guidance: float = 1.0
    ) -> None:
        import torch
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        super().__init__(spec, path, device, weight_dtype, training_guidance)
        self.tokenizer = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(str(path), subfolder="text_encoder").to(device, weight_dtype)  # type: ignore[arg-type]  # transformers stubs
        self.vae = AutoencoderKL.from_pretrained(str(path), subfolder="vae").to(device, torch.float32)
        self.denoiser = UNet2DConditionModel.from_pretrained(str(path), subfolder="unet").to(device, weight_dtype)
        self.noise_scheduler = DDPMScheduler.from_pretrained(str(path), subfolder="scheduler")
        for frozen in (self.text_encoder, self.vae, self.denoiser):
            frozen.requires_grad_(False)
            frozen.eval()
        self._pipeline: Any = None

    def encode_captions(self, texts: list[str]) -> Conditioning:
        import torch

        tokenizer = self.tokenizer
        tokens = tokenizer(
            texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        with torch.no_grad():
            hidden: torch.Tensor = self.text_encoder(tokens.input_ids.to(self.device))[0].float()
        return Conditioning(hidden)

    def predict(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, batch: Batch, autocast: torch.dtype | None
    ) -> torch.Tensor:
        dtype = self.weight_dtype
        with self._autocast(autocast):
            hidden = batch.conditioning.hidden.to(self.device, dtype)
            prediction: torch.Tensor = self.denoiser(
                noisy.to(self.device, dtype), timesteps.to(self.device), hidden
            ).sample
        return prediction

    def sample(self, prompt: str, seed: int) -> Any:
        import torch
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        if self._pipeline is None:
            self._pipeline = StableDiffusionPipeline(
                vae=self.vae,
                text_encoder=self.text_encoder,
                tokenizer=self.tokenizer,
                unet=self.denoiser,
                scheduler=DDIMScheduler.from_pretrained(str(self.path), subfolder="scheduler"),
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
            self._pipeline.set_progress_bar_config(disable=True)
        width, height = self.spec.native_resolutions[0]
        with torch.inference_mode():
            return self._pipeline(
                prompt,
                num_inference_steps=self.spec.default_steps,
                width=width,
                height=height,
                generator=torch.Generator("cpu").manual_seed(seed),
                guidance_scale=self.spec.default_guidance,
            ).images[0]

    def save_lora(self, layers: dict[str, torch.Tensor], metadata: dict[str, Any], target: Path) -> None:
        """The format diffusers' `load_lora_weights` reads (peft keys under `unet.`). The older
        lora.down/lora.up conversion is skipped on purpose: it only renames attention layers, and a file mixing
        both namings loads without its attention LoRAs."""
        from diffusers import StableDiffusionPipeline

        StableDiffusionPipeline.save_lora_weights(
            save_directory=str(target.parent),
            unet_lora_layers=layers,
            weight_name=target.name,
            unet_lora_adapter_metadata=metadata,
        )


class SDXLFamily(DDPMFamily):
    """train_dreambooth_lora_sdxl.py: both CLIP encoders (penultimate hidden states concatenated, pooled from
    the second), six size/crop time ids per picture; the VAE encodes in fp32."""

    def __init__(
        self, spec: BaseModelSpec, path: Path, device: str, weight_dtype: torch.dtype, training_guidance: float = 1.0
    ) -> None:
        import torch
        from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

        super().__init__(spec, path, device, weight_dtype, training_guidance)
        # The text half of the pipeline encodes captions exactly as sampling will.
        self.text = StableDiffusionXLPipeline.from_pretrained(str(path), unet=None, vae=None, dtype=weight_dtype).to(
            device
        )
        # SDXL's VAE overflows in fp16; a directory `vae-fp16-fix` beside it is used when present.
        vae_dir = "vae-fp16-fix" if (path / "vae-fp16-fix" / "config.json").is_file() else "vae"
        vae_dtype = weight_dtype if vae_dir == "vae-fp16-fix" else torch.float32
        self.vae = AutoencoderKL.from_pretrained(str(path), subfolder=vae_dir).to(device, vae_dtype)
        self.denoiser = UNet2DConditionModel.from_pretrained(str(path), subfolder="unet").to(device, weight_dtype)
        self.noise_scheduler = DDPMScheduler.from_pretrained(str(path), subfolder="scheduler")
        for frozen in (self.vae, self.denoiser, self.text.text_encoder, self.text.text_encoder_2):
            frozen.requires_grad_(False)
            frozen.eval()
        self._sample_embeddings: dict[str, Conditioning] = {}

    def encode_captions(self, texts: list[str]) -> Conditioning:
        import torch

        with torch.no_grad():
            hidden, _, pooled, _ = self.text.encode_prompt(
                texts, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )
        return Conditioning(hidden.float().cpu(), pooled.float().cpu())

    def prepare_sampling(self, prompt: str) -> None:
        """Encode the sample prompt (and its empty negative) before the encoders are freed."""
        import torch

        with torch.no_grad():
            hidden, negative, pooled, negative_pooled = self.text.encode_prompt(
                prompt, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=True
            )
        self._sample_embeddings = {
            "prompt": Conditioning(hidden, pooled),
            "negative": Conditioning(negative, negative_pooled),
        }

    def free_encoders(self) -> None:
        self._free_text_pipeline()

    def predict(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, batch: Batch, autocast: torch.dtype | None
    ) -> torch.Tensor:
        conditioning = batch.conditioning
        assert conditioning.pooled is not None
        dtype = self.weight_dtype
        with self._autocast(autocast):
            prediction: torch.Tensor = self.denoiser(
                noisy.to(self.device, dtype),
                timesteps.to(self.device),
                conditioning.hidden.to(self.device, dtype),
                added_cond_kwargs={
                    "text_embeds": conditioning.pooled.to(self.device, dtype),
                    "time_ids": batch.time_ids.to(self.device, dtype),
                },
            ).sample
        return prediction

    def sample(self, prompt: str, seed: int) -> Any:
        from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

        pipeline = StableDiffusionXLPipeline(
            vae=self.vae,
            text_encoder=None,
            text_encoder_2=None,
            tokenizer=None,
            tokenizer_2=None,
            unet=self.denoiser,
            scheduler=EulerDiscreteScheduler.from_pretrained(str(self.path), subfolder="scheduler"),
        )
        embeddings = self._sample_embeddings
        return self._draw_sample(
            pipeline,
            seed,
            prompt_embeds=embeddings["prompt"].hidden,
            pooled_prompt_embeds=embeddings["prompt"].pooled,
            negative_prompt_embeds=embeddings["negative"].hidden,
            negative_pooled_prompt_embeds=embeddings["negative"].pooled,
        )

    def save_lora(self, layers: dict[str, torch.Tensor], metadata: dict[str, Any], target: Path) -> None:
        from diffusers import StableDiffusionXLPipeline

        StableDiffusionXLPipeline.save_lora_weights(
            save_directory=str(target.parent),
            unet_lora_layers=layers,
            weight_name=target.name,
            unet_lora_adapter_metadata=metadata,
        )


def flux_lora_targets(transformer: Any, suffixes: tuple[str, ...]) -> list[str]:
    """The layers of a FLUX transformer whose names end in one of the registry's suffixes, only inside the
    transformer blocks (the top-level proj_out stays frozen): 418 on FLUX.1-dev."""
    return [
        name
        for name, _ in transformer.named_modules()
        if "transformer_blocks." in name and any(name == s or name.endswith("." + s) for s in suffixes)
    ]


class FluxFamily(Family):
    """train_dreambooth_lora_flux.py: latents shifted and scaled by the VAE's factors and packed 2×2 into
    tokens with their position ids, CLIP pooled + T5 sequence embeddings, rectified-flow noising at the
    sampler's shifted noise levels, target `noise − latents`, the guidance embedding fed `training_guidance`."""

    def __init__(
        self, spec: BaseModelSpec, path: Path, device: str, weight_dtype: torch.dtype, training_guidance: float = 1.0
    ) -> None:
        import torch
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

        super().__init__(spec, path, device, weight_dtype, training_guidance)
        self.text = FluxPipeline.from_pretrained(str(path), transformer=None, vae=None, dtype=weight_dtype).to(device)
        self.vae = AutoencoderKL.from_pretrained(str(path), subfolder="vae").to(device, torch.float32)
        self.denoiser = FluxTransformer2DModel.from_pretrained(str(path), subfolder="transformer").to(
            device, weight_dtype
        )
        self.noise_scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(str(path), subfolder="scheduler")
        for frozen in (self.vae, self.denoiser, self.text.text_encoder, self.text.text_encoder_2):
            frozen.requires_grad_(False)
            frozen.eval()
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self._sample_embeddings: Conditioning | None = None

    def size_multiple(self) -> int:
        return int(self.vae_scale_factor * 2)

    def encode_captions(self, texts: list[str]) -> Conditioning:
        import torch

        with torch.no_grad():
            hidden, pooled, _ = self.text.encode_prompt(texts, prompt_2=None, device=self.device)
        return Conditioning(hidden.float().cpu(), pooled.float().cpu())

    def prepare_sampling(self, prompt: str) -> None:
        self._sample_embeddings = self.encode_captions([prompt])

    def free_encoders(self) -> None:
        self._free_text_pipeline()

    def lora_targets(self) -> list[str]:
        return flux_lora_targets(self.denoiser, self.spec.lora_target_modules)

    def add_noise(
        self, latents: torch.Tensor, noise: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rectified-flow noising at a noise level σ drawn uniformly and then shifted as the sampler shifts its
        schedule; the transformer is told σ itself (the pipeline passes t / 1000 with t = σ·1000)."""
        import torch

        _, _, height, width = latents.shape
        u = torch.rand(len(latents), generator=generator).clamp(1e-4, 1 - 1e-4)
        sigmas = self.noise_levels(u, (height // 2) * (width // 2))
        spread = sigmas.view(-1, 1, 1, 1)
        return (1.0 - spread) * latents + spread * noise, sigmas

    def noise_levels(self, u: torch.Tensor, image_seq_len: int) -> torch.Tensor:
        """The sampler's time shift of uniform noise levels for an image of `image_seq_len` tokens."""
        return flow_sigmas(self.noise_scheduler.config, u, image_seq_len)

    def predict(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, batch: Batch, autocast: torch.dtype | None
    ) -> torch.Tensor:
        import torch
        from diffusers import FluxPipeline

        conditioning = batch.conditioning
        assert conditioning.pooled is not None
        count, _, height, width = noisy.shape
        dtype = self.weight_dtype
        image_ids = FluxPipeline._prepare_latent_image_ids(count, height // 2, width // 2, self.device, dtype)
        text_ids = torch.zeros(conditioning.hidden.shape[1], 3, device=self.device, dtype=dtype)
        guidance = None
        if self.denoiser.config.guidance_embeds:
            guidance = torch.full((count,), self.training_guidance, device=self.device, dtype=torch.float32)
        with self._autocast(autocast):
            tokens = self.denoiser(
                hidden_states=self.pack(noisy).to(self.device, dtype),
                timestep=timesteps.to(self.device, dtype),
                guidance=guidance,
                pooled_projections=conditioning.pooled.to(self.device, dtype),
                encoder_hidden_states=conditioning.hidden.to(self.device, dtype),
                txt_ids=text_ids,
                img_ids=image_ids,
                return_dict=False,
            )[0]
        return self.unpack(tokens, height, width)

    def pack(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, C, H, W] as the transformer's tokens: 2×2 patches, [B, H/2·W/2, 4C], as the sampler packs."""
        from diffusers import FluxPipeline

        packed: torch.Tensor = FluxPipeline._pack_latents(latents, *latents.shape)
        return packed

    def unpack(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        from diffusers import FluxPipeline

        factor = self.vae_scale_factor
        unpacked: torch.Tensor = FluxPipeline._unpack_latents(tokens, height * factor, width * factor, factor)
        return unpacked

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The velocity a rectified-flow sampler integrates: from the picture towards the noise."""
        return noise - latents

    def sample(self, prompt: str, seed: int) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

        assert self._sample_embeddings is not None and self._sample_embeddings.pooled is not None
        pipeline = FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(str(self.path), subfolder="scheduler"),
            vae=self.vae,
            text_encoder=None,
            tokenizer=None,
            text_encoder_2=None,
            tokenizer_2=None,
            transformer=self.denoiser,
        )
        dtype = self.weight_dtype
        return self._draw_sample(
            pipeline,
            seed,
            prompt_embeds=self._sample_embeddings.hidden.to(self.device, dtype),
            pooled_prompt_embeds=self._sample_embeddings.pooled.to(self.device, dtype),
        )

    def save_lora(self, layers: dict[str, torch.Tensor], metadata: dict[str, Any], target: Path) -> None:
        from diffusers import FluxPipeline

        FluxPipeline.save_lora_weights(
            save_directory=str(target.parent),
            transformer_lora_layers=layers,
            weight_name=target.name,
            transformer_lora_adapter_metadata=metadata,
        )


# The registry's family names and their training recipes.
FAMILIES: dict[str, type[Family]] = {"sd": SDFamily, "sdxl": SDXLFamily, "flux": FluxFamily}


def family_for(
    spec: BaseModelSpec, path: Path, device: str, weight_dtype: torch.dtype, training_guidance: float = 1.0
) -> Family:
    """Load the training half of a base model's family."""
    recipe = FAMILIES.get(spec.family)
    if recipe is None:
        raise UnknownFamily(f"no training recipe for the {spec.family!r} family")
    return recipe(spec, path, device, weight_dtype, training_guidance)
