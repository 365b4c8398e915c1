// The Firefly style preset ids (SPEC §6), offered by the preview's style picker.

export const STYLE_PRESETS = `graphic wireframe vector_look bw cool_colors golden monochromatic muted_color pastel_color
toned_image vibrant_colors warm_tone closeup knolling landscape_photography macrophotography
photographed_through_window shallow_depth_of_field shot_from_above shot_from_below surface_detail wide_angle
beautiful bohemian chaotic dais divine eclectic futuristic kitschy nostalgic simple antique_photo bioluminescent
bokeh color_explosion dark faded_image fisheye gomori_photography grainy_film iridescent isometric misty neon
otherworldly_depiction ultraviolet underwater backlighting dramatic_light golden_hour harsh_light long low_lighting
multiexposure studio_light surreal_lighting 3d_patterns charcoal claymation fabric fur guilloche_patterns
layered_paper marble_sculpture made_of_metal origami paper_mache polka strange_patterns wood_carving yarn art_deco
art_nouveau baroque bauhaus constructivism cubism cyberpunk fantasy fauvism film_noir glitch_art impressionism
industrialism maximalism minimalism modern_art modernism neo pointillism psychedelic science_fiction steampunk
surrealism synthetism synthwave vaporwave acrylic_paint bold_lines chiaroscuro color_shift_art daguerreotype
digital_fractal doodle_drawing double_exposure_portrait fresco geometric_pen halftone ink light_painting
line_drawing linocut oil_paint paint_spattering painting palette_knife photo_manipulation scribble_texture sketch
splattering stippling_drawing watercolor 3d anime cartoon cinematic comic_book concept_art cyber_matrix digital_art
flat_design geometric glassmorphism glitch_graphic graffiti hyper_realistic interior_design line_gradient low_poly
newspaper_collage optical_illusion pattern_pixel pixel_art pop_art product_photo psychedelic_background
psychedelic_wonderland scandinavian splash_images stamp trompe_loeil`.split(/\s+/);

// Ids whose words do not read as a name on their own.
const LABELS = {
  bw: "Black and white", "3d": "3D", "3d_patterns": "3D patterns", long: "Long exposure", neo: "Neo-expressionism",
  polka: "Polka dots", dais: "Dais (pedestal)", trompe_loeil: "Trompe-l'œil", hyper_realistic: "Hyper-realistic",
  low_poly: "Low poly", paper_mache: "Papier-mâché", multiexposure: "Multiple exposure",
};

export const presetLabel = (id) => LABELS[id] || id.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
