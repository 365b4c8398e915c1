"""The documentation keeps up with the code: every setting is in the configuration table."""

from __future__ import annotations

import re
from pathlib import Path

from ember.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented_in_the_configuration_table() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`([a-z_0-9]+)`", table))
    missing = sorted(name for name in Settings.model_fields if name not in documented)
    assert missing == [], f"settings missing from docs/configuration.md: {missing}"
