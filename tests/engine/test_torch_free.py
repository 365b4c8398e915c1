"""The modules the control plane imports must not import torch."""

from __future__ import annotations

import subprocess
import sys

TORCH_FREE = [
    "ember.engine",
    "ember.engine.registry",
    "ember.engine.presets",
    "ember.engine.dataset",
    "ember.engine.captioning",
    "ember.engine.types",
    "ember.engine.tokenizer",
    "ember.engine.images",
    "ember.uploads",
    "ember.cli.engine",
]


def test_torch_free_modules_import_without_torch() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in TORCH_FREE)
        + "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft') if m in sys.modules]\n"
        + "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
