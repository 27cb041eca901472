"""The public names: every package lists its lazy names in dir(), and ``import codegym`` stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

# The packages whose public names partly load on first use (codegym.lazy).
LAZY_PACKAGES = [
    "codegym",
    "codegym.agents",
    "codegym.models",
    "codegym.tasks",
    "codegym.tcg",
    "codegym.training",
    "codegym.integrations.openenv",
]

# The stacks that only some users need; none may load with `import codegym` or `codegym --help`.
HEAVY = ("torch", "transformers", "ray", "trl", "stable_baselines3", "datasets", "docker", "openenv")


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_public_name_is_in_dir_and_resolves(name):
    package = importlib.import_module(name)
    listing = dir(package)
    assert listing == sorted(listing)
    for public in package.__all__:
        assert public in listing, f"{name}.{public} is public but dir() does not list it"
        assert getattr(package, public) is not None


def test_an_unknown_name_is_still_an_attribute_error():
    import codegym.models

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = codegym.models.nope


@pytest.mark.parametrize(
    "code",
    ["import codegym", "from codegym.cli import build_parser; build_parser()"],
    ids=["import codegym", "codegym --help"],
)
def test_the_light_entry_points_load_no_heavy_stack(code):
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_package_folder_is_in_the_installed_package_list():
    """pyproject.toml lists the packages by hand (agents/ and sandbox/ install under codegym.*): a new
    folder left out of it would be missing from a wheel, though an editable install still finds it."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        "codegym": root / "codegym",
        "codegym.sandbox": root / "sandbox",
        "codegym.agents": root / "agents",
    }
    assert setuptools["package-dir"] == {name: folder.name for name, folder in folders.items()}
    found = {
        ".".join([name, *init.parent.relative_to(folder).parts])
        for name, folder in folders.items()
        for init in folder.rglob("__init__.py")
        if not (
            name == "codegym" and init.parent.relative_to(folder).parts[:1] in (("sandbox",), ("agents",))
        )
    }
    assert sorted(setuptools["packages"]) == sorted(found)
