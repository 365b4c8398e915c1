"""SPEC §6 style presets, content classes and visualIntensity as prompt conditioning."""

from __future__ import annotations

import pytest

from ember.engine.presets import (
    CONTENT_CLASSES,
    STYLE_PRESETS,
    compose_prompt,
    guidance_for,
    style_weight,
)
from ember.engine.registry import get_base_model
from ember.engine.types import InvalidRequest

SPEC_PRESET_IDS = """
graphic wireframe vector_look bw cool_colors golden monochromatic muted_color pastel_color toned_image vibrant_colors
warm_tone closeup knolling landscape_photography macrophotography photographed_through_window shallow_depth_of_field
shot_from_above shot_from_below surface_detail wide_angle beautiful bohemian chaotic dais divine eclectic futuristic
kitschy nostalgic simple antique_photo bioluminescent bokeh color_explosion dark faded_image fisheye gomori_photography
grainy_film iridescent isometric misty neon otherworldly_depiction ultraviolet underwater backlighting dramatic_light
golden_hour harsh_light long low_lighting multiexposure studio_light surreal_lighting 3d_patterns charcoal claymation
fabric fur guilloche_patterns layered_paper marble_sculpture made_of_metal origami paper_mache polka strange_patterns
wood_carving yarn art_deco art_nouveau baroque bauhaus constructivism cubism cyberpunk fantasy fauvism film_noir
glitch_art impressionism industrialism maximalism minimalism modern_art modernism neo pointillism psychedelic
science_fiction steampunk surrealism synthetism synthwave vaporwave acrylic_paint bold_lines chiaroscuro
color_shift_art daguerreotype digital_fractal doodle_drawing double_exposure_portrait fresco geometric_pen halftone ink
light_painting line_drawing linocut oil_paint paint_spattering painting palette_knife photo_manipulation
scribble_texture sketch splattering stippling_drawing watercolor 3d anime cartoon cinematic comic_book concept_art
cyber_matrix digital_art flat_design geometric glassmorphism glitch_graphic graffiti hyper_realistic interior_design
line_gradient low_poly newspaper_collage optical_illusion pattern_pixel pixel_art pop_art product_photo
psychedelic_background psychedelic_wonderland scandinavian splash_images stamp trompe_loeil
""".split()


def test_every_spec_preset_id_has_a_phrase() -> None:
    assert set(SPEC_PRESET_IDS) == set(STYLE_PRESETS)
    assert all(STYLE_PRESETS[preset].strip() for preset in SPEC_PRESET_IDS)


def test_preset_phrases_are_distinct() -> None:
    assert len(set(STYLE_PRESETS.values())) == len(STYLE_PRESETS)


def test_prompt_comes_first_then_content_class_then_styles() -> None:
    composed = compose_prompt("a red mug", "photo", ["watercolor"])
    assert composed.text == f"a red mug, {CONTENT_CLASSES['photo']}, {STYLE_PRESETS['watercolor']}"
    assert composed.unstyled == f"a red mug, {CONTENT_CLASSES['photo']}"


def test_unknown_preset_and_content_class_are_rejected() -> None:
    with pytest.raises(InvalidRequest):
        compose_prompt("x", style_presets=["not_a_preset"])
    with pytest.raises(InvalidRequest):
        compose_prompt("x", content_class="video")


def test_style_strength_fifty_is_the_plain_styled_prompt_and_grows_with_strength() -> None:
    assert style_weight(50) == 1.0
    weights = [style_weight(s) for s in (1, 25, 50, 75, 100)]
    assert weights == sorted(weights) and weights[0] > 0 and weights[-1] == 1.5


def test_visual_intensity_spans_the_models_guidance_range() -> None:
    spec = get_base_model("sd15")
    assert guidance_for(spec, 2) == spec.guidance_range[0]
    assert guidance_for(spec, 10) == spec.guidance_range[1]
    assert guidance_for(spec, None) == spec.default_guidance
    values = [guidance_for(spec, v) for v in range(2, 11)]
    assert values == sorted(values) and len(set(values)) == 9


def test_visual_intensity_outside_two_to_ten_is_rejected() -> None:
    with pytest.raises(InvalidRequest):
        guidance_for(get_base_model("sd15"), 11)
