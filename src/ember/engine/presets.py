"""Prompt conditioning of SPEC §6: style preset phrases, content classes, visualIntensity → guidance."""

from __future__ import annotations

from dataclasses import dataclass

from ember.engine.registry import BaseModelSpec
from ember.engine.types import InvalidRequest

STYLE_PRESETS: dict[str, str] = {
    "graphic": "bold graphic design, flat shapes, strong contrast",
    "wireframe": "wireframe render, thin outline mesh lines",
    "vector_look": "clean vector illustration, crisp edges, flat fills",
    "bw": "black and white, monochrome, no colour",
    "cool_colors": "cool colour palette, blues and teals",
    "golden": "golden tones, warm gold highlights",
    "monochromatic": "monochromatic colour scheme, shades of a single hue",
    "muted_color": "muted colours, desaturated soft palette",
    "pastel_color": "pastel colours, soft light tints",
    "toned_image": "toned image, split toning, colour graded",
    "vibrant_colors": "vibrant saturated colours, vivid palette",
    "warm_tone": "warm tones, oranges and reds, cosy light",
    "closeup": "close-up shot, tight framing, fine detail",
    "knolling": "knolling, objects arranged neatly at right angles, top view",
    "landscape_photography": "landscape photography, wide vista, natural scenery",
    "macrophotography": "macro photography, extreme close-up, tiny details",
    "photographed_through_window": "photographed through a window, glass reflections",
    "shallow_depth_of_field": "shallow depth of field, blurred background, sharp subject",
    "shot_from_above": "shot from above, overhead bird's eye view",
    "shot_from_below": "shot from below, low angle worm's eye view",
    "surface_detail": "rich surface detail, visible texture",
    "wide_angle": "wide angle lens, expansive perspective",
    "beautiful": "beautiful, elegant, harmonious composition",
    "bohemian": "bohemian style, eclectic textiles, free spirited",
    "chaotic": "chaotic composition, busy, energetic clutter",
    "dais": "displayed on a dais, pedestal, plinth",
    "divine": "divine, heavenly light, ethereal glow",
    "eclectic": "eclectic mix of styles and objects",
    "futuristic": "futuristic, sleek advanced technology",
    "kitschy": "kitschy, playful, over the top decoration",
    "nostalgic": "nostalgic, vintage memories, retro feel",
    "simple": "simple, minimal, uncluttered",
    "antique_photo": "antique photograph, sepia, aged paper",
    "bioluminescent": "bioluminescent glow, glowing organisms in the dark",
    "bokeh": "bokeh, soft out of focus light circles",
    "color_explosion": "explosion of colour, bursts of paint",
    "dark": "dark, moody, deep shadows",
    "faded_image": "faded image, washed out colours",
    "fisheye": "fisheye lens, strong barrel distortion",
    "gomori_photography": "gomori photography, dreamy soft focus",
    "grainy_film": "grainy film photograph, film grain",
    "iridescent": "iridescent, shimmering rainbow sheen",
    "isometric": "isometric view, isometric projection",
    "misty": "misty, fog, hazy atmosphere",
    "neon": "neon lights, glowing neon colours",
    "otherworldly_depiction": "otherworldly, alien landscape, unreal",
    "ultraviolet": "ultraviolet light, purple blacklight glow",
    "underwater": "underwater scene, light rays through water",
    "backlighting": "backlighting, rim light, glowing silhouette",
    "dramatic_light": "dramatic lighting, strong contrast of light and shadow",
    "golden_hour": "golden hour, warm low sunlight",
    "harsh_light": "harsh light, hard shadows, midday sun",
    "long": "long exposure, motion blur, light trails",
    "low_lighting": "low light, dim scene",
    "multiexposure": "multiple exposure, layered overlapping images",
    "studio_light": "studio lighting, softbox, clean backdrop",
    "surreal_lighting": "surreal lighting, impossible coloured light",
    "3d_patterns": "three dimensional patterns, embossed geometry",
    "charcoal": "charcoal drawing, smudged black strokes",
    "claymation": "claymation, plasticine figures, stop motion",
    "fabric": "made of fabric, textile, stitched cloth",
    "fur": "covered in fur, fluffy texture",
    "guilloche_patterns": "guilloche patterns, fine engraved interlaced lines",
    "layered_paper": "layered paper cutout, paper craft depth",
    "marble_sculpture": "marble sculpture, carved white stone",
    "made_of_metal": "made of metal, polished chrome and steel",
    "origami": "origami, folded paper",
    "paper_mache": "papier mache, paper mache craft",
    "polka": "polka dots pattern",
    "strange_patterns": "strange patterns, unusual repeating motifs",
    "wood_carving": "wood carving, carved wooden texture",
    "yarn": "made of yarn, knitted wool",
    "art_deco": "art deco style, geometric ornament, gold and black",
    "art_nouveau": "art nouveau, flowing organic lines, floral ornament",
    "baroque": "baroque style, ornate, dramatic grandeur",
    "bauhaus": "bauhaus style, primary colours, simple geometry",
    "constructivism": "constructivism, bold diagonal shapes, red and black",
    "cubism": "cubism, fragmented geometric planes",
    "cyberpunk": "cyberpunk, neon city, high tech low life",
    "fantasy": "fantasy art, magical, epic",
    "fauvism": "fauvism, wild expressive colour",
    "film_noir": "film noir, black and white, hard shadows",
    "glitch_art": "glitch art, digital distortion, pixel sorting",
    "impressionism": "impressionist painting, visible brush strokes, light",
    "industrialism": "industrial style, raw metal and concrete",
    "maximalism": "maximalism, abundant detail and pattern",
    "minimalism": "minimalism, negative space, few elements",
    "modern_art": "modern art, abstract forms",
    "modernism": "modernist design, clean functional forms",
    "neo": "neo expressionism, raw bold painting",
    "pointillism": "pointillism, painted with small dots",
    "psychedelic": "psychedelic, swirling vivid colours",
    "science_fiction": "science fiction, spaceships, future worlds",
    "steampunk": "steampunk, brass gears, victorian machinery",
    "surrealism": "surrealism, dreamlike impossible scene",
    "synthetism": "synthetism, flat areas of colour, bold outlines",
    "synthwave": "synthwave, retro eighties neon grid, sunset",
    "vaporwave": "vaporwave, pastel pink and cyan, retro digital",
    "acrylic_paint": "acrylic painting, thick bright paint",
    "bold_lines": "bold lines, thick outlines",
    "chiaroscuro": "chiaroscuro, strong light and dark contrast",
    "color_shift_art": "colour shift art, shifting hues",
    "daguerreotype": "daguerreotype, early silver photograph",
    "digital_fractal": "digital fractal, recursive geometric detail",
    "doodle_drawing": "doodle drawing, playful hand drawn lines",
    "double_exposure_portrait": "double exposure portrait, silhouette blended with scenery",
    "fresco": "fresco painting, plaster wall mural",
    "geometric_pen": "geometric pen drawing, precise ink lines",
    "halftone": "halftone print, dot screen pattern",
    "ink": "ink drawing, brush and ink",
    "light_painting": "light painting, glowing light strokes in the dark",
    "line_drawing": "line drawing, clean contour lines",
    "linocut": "linocut print, carved block print",
    "oil_paint": "oil painting, rich impasto brushwork",
    "paint_spattering": "paint spatter, splashes and drips",
    "painting": "painting, painted artwork",
    "palette_knife": "palette knife painting, thick textured strokes",
    "photo_manipulation": "photo manipulation, composited surreal photo",
    "scribble_texture": "scribble texture, loose pen scribbles",
    "sketch": "pencil sketch, rough drawing",
    "splattering": "splattered paint texture",
    "stippling_drawing": "stippling drawing, shading with dots",
    "watercolor": "watercolour painting, soft washes",
    "3d": "3d render, smooth shading",
    "anime": "anime style, cel shading",
    "cartoon": "cartoon style, simple shapes, bold outlines",
    "cinematic": "cinematic still, film lighting, widescreen",
    "comic_book": "comic book style, ink outlines, halftone shading",
    "concept_art": "concept art, painterly design sketch",
    "cyber_matrix": "cyber matrix, green digital code",
    "digital_art": "digital art, digital painting",
    "flat_design": "flat design, simple shapes, no gradients",
    "geometric": "geometric shapes, clean angles",
    "glassmorphism": "glassmorphism, frosted glass panels",
    "glitch_graphic": "glitch graphic, broken digital artefacts",
    "graffiti": "graffiti, spray paint street art",
    "hyper_realistic": "hyper realistic, extremely detailed",
    "interior_design": "interior design, styled room",
    "line_gradient": "line gradient, smooth gradient strokes",
    "low_poly": "low poly, faceted polygons",
    "newspaper_collage": "newspaper collage, cut paper clippings",
    "optical_illusion": "optical illusion, impossible geometry",
    "pattern_pixel": "pixel pattern, repeating pixel motif",
    "pixel_art": "pixel art, blocky pixels, retro game",
    "pop_art": "pop art, bold colours, comic dots",
    "product_photo": "product photo, studio backdrop, sharp detail",
    "psychedelic_background": "psychedelic background, swirling colour",
    "psychedelic_wonderland": "psychedelic wonderland, trippy fantasy",
    "scandinavian": "scandinavian design, light wood, clean white",
    "splash_images": "splash, liquid splashes frozen in motion",
    "stamp": "postage stamp design, perforated edge",
    "trompe_loeil": "trompe l'oeil, realistic illusion painting",
}

CONTENT_CLASSES: dict[str, str] = {
    "photo": "a photograph, photorealistic, natural lighting, sharp focus",
    "art": "an artwork, illustration, artistic rendering",
}

VISUAL_INTENSITY_RANGE = (2, 10)


def style_weight(strength: int) -> float:
    """How strongly style phrases condition the image: 50 (the default) is the plain styled prompt.

    Below 50 the conditioning moves toward the unstyled prompt; above it, past the styled prompt, up to
    1.5× at 100 (further extrapolation breaks images on real models).
    """
    if not 1 <= strength <= 100:
        raise InvalidRequest(f"style strength must be 1–100, got {strength}")
    if strength <= 50:
        return strength / 50
    return 1.0 + (strength - 50) / 100


def guidance_for(spec: BaseModelSpec, visual_intensity: int | None) -> float:
    """visualIntensity 2…10 spans the base model's guidance range linearly; None gives its default."""
    if visual_intensity is None:
        return spec.default_guidance
    low_vi, high_vi = VISUAL_INTENSITY_RANGE
    if not low_vi <= visual_intensity <= high_vi:
        raise InvalidRequest(f"visualIntensity must be {low_vi}–{high_vi}, got {visual_intensity}")
    low, high = spec.guidance_range
    return low + (high - low) * (visual_intensity - low_vi) / (high_vi - low_vi)


@dataclass(frozen=True)
class ComposedPrompt:
    """`text` is the full prompt; `unstyled` is it without style phrases; `style_weight` blends the two."""

    text: str
    unstyled: str
    style_weight: float


def compose_prompt(
    prompt: str,
    content_class: str | None = None,
    style_presets: list[str] | None = None,
    style_strength: int = 50,
    style_description: str | None = None,
) -> ComposedPrompt:
    """The user's prompt first (so truncation never drops it), then the content class, then style phrases."""
    parts = [prompt.strip()]
    if content_class is not None:
        if content_class not in CONTENT_CLASSES:
            raise InvalidRequest(f"contentClass must be one of {sorted(CONTENT_CLASSES)}, got {content_class!r}")
        parts.append(CONTENT_CLASSES[content_class])
    unstyled = ", ".join(parts)
    style_parts: list[str] = []
    for preset in style_presets or []:
        if preset not in STYLE_PRESETS:
            raise InvalidRequest(f"unknown style preset {preset!r}")
        style_parts.append(STYLE_PRESETS[preset])
    if style_description:
        style_parts.append(style_description)
    if not style_parts:
        return ComposedPrompt(text=unstyled, unstyled=unstyled, style_weight=1.0)
    return ComposedPrompt(
        text=", ".join([unstyled, *style_parts]), unstyled=unstyled, style_weight=style_weight(style_strength)
    )


def vocabulary_words() -> list[str]:
    """Every word the presets and content classes use, so a small tokenizer can hold them whole."""
    import re

    words: set[str] = set()
    for phrase in [*STYLE_PRESETS.values(), *CONTENT_CLASSES.values()]:
        words.update(re.findall(r"[a-z]+", phrase.lower()))
    return sorted(words)
