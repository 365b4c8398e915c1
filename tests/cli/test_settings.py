"""Settings: embedded defaults under the data directory, environment variables, and `ember.toml`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.config import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EMBER_DATA_DIR", "EMBER_CONFIG", "EMBER_DATABASE_URL", "EMBER_BLOB_URL", "EMBER_RAY_ADDRESS",
                 "EMBER_DEFAULT_BASE_MODEL"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_put_everything_under_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'ember.db'}"
    assert settings.blob_url == f"file://{tmp_path / 'blobs'}"
    assert settings.model_dir == tmp_path / "models"
    assert (settings.default_base_model, settings.region, settings.ray_address) == ("toy", "VA6C2", "")


def test_the_default_data_directory_is_data_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings().data_dir == tmp_path / "data"


def test_environment_variables_override_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EMBER_RAY_ADDRESS", "disabled")
    monkeypatch.setenv("EMBER_RATE_LIMIT_PER_MINUTE", "7")
    settings = Settings()
    assert (settings.data_dir, settings.ray_enabled, settings.rate_limit_per_minute) == (tmp_path, False, 7)


def test_ember_toml_in_the_data_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "ember.toml").write_text('region = "EU1"\nrate_limit_per_day = 5\n')
    settings = Settings(data_dir=tmp_path)
    assert (settings.region, settings.rate_limit_per_day) == ("EU1", 5)


def test_the_environment_wins_over_ember_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ember.toml").write_text('region = "EU1"\n')
    monkeypatch.setenv("EMBER_REGION", "US2")
    assert Settings(data_dir=tmp_path).region == "US2"


def test_ember_config_names_a_toml_file_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text(f'data_dir = "{tmp_path / "d"}"\n')
    monkeypatch.setenv("EMBER_CONFIG", str(config))
    assert Settings().data_dir == tmp_path / "d"


def test_an_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ember.toml").write_text("regoin = 'EU1'\n")
    with pytest.raises(ValueError, match="regoin"):
        Settings(data_dir=tmp_path)
