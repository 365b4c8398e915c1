"""The import rules of the package map (docs/architecture.md), read from every import statement in the source tree
(lazy imports inside functions and TYPE_CHECKING blocks included), and the copies the rules make necessary kept equal.

The runtime side, that importing `ember.api` loads neither torch nor the engine, is tests/api/test_imports.py."""

from __future__ import annotations

import ast
from pathlib import Path

import ember

SOURCE = Path(ember.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of the file names (`from a.b import c` names `a.b` and `a.b.c`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative imports hide what a module imports"
            module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def imports_of(package: str) -> dict[str, set[str]]:
    folder = SOURCE.joinpath(*package.split(".")[1:])
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
    assert files, f"{package} has no source files"
    return {str(file.relative_to(SOURCE)): imported_modules(file) for file in files}


def within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def breaking(package: str, *forbidden: str) -> dict[str, list[str]]:
    return {
        file: sorted(name for name in names if within(name, *forbidden))
        for file, names in imports_of(package).items()
        if any(within(name, *forbidden) for name in names)
    }


def test_the_api_imports_no_torch_and_no_engine() -> None:
    assert breaking("ember.api", "torch", "ember.engine", "diffusers", "transformers", "peft") == {}


def test_jobs_import_neither_the_api_nor_the_custom_model_package() -> None:
    assert breaking("ember.jobs", "ember.api", "ember.custom_models") == {}


def test_the_engine_imports_nothing_else_of_ember() -> None:
    others = {
        file: sorted(name for name in names if within(name, "ember") and not within(name, "ember.engine"))
        for file, names in imports_of("ember.engine").items()
    }
    assert {file: names for file, names in others.items() if names} == {}


def test_the_domain_and_worker_packages_do_not_speak_http() -> None:
    assert breaking("ember.custom_models", "ember.api", "ember.worker", "ember.cli", "fastapi") == {}
    assert breaking("ember.worker", "ember.api", "ember.cli", "fastapi") == {}
    assert breaking("ember.store", "ember.api", "ember.jobs", "ember.custom_models", "ember.worker") == {}


def test_the_shared_leaf_modules_import_nothing_of_ember() -> None:
    for leaf in ("ember.media", "ember.validation", "ember.safe_fetch", "ember.job_stream"):
        assert breaking(leaf, "ember") == {}, leaf


def test_the_engine_s_media_table_and_seed_limit_equal_the_shared_ones() -> None:
    from ember.engine import generate
    from ember.media import MAX_SEED, PIL_FORMATS

    assert generate.MIMETYPES == PIL_FORMATS
    assert generate.MAX_SEED == MAX_SEED
