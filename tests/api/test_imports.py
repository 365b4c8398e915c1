"""The control plane stays light: importing the API must not pull in torch."""

from __future__ import annotations

import subprocess
import sys


def test_importing_ember_api_leaves_torch_unimported() -> None:
    code = "import sys, ember.api; print('torch' in sys.modules, 'ember.engine' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.split() == ["False", "False"]
