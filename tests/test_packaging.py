"""Packaging: pyproject's metadata (SPDX licence, one version number, classifiers, extras), the README's
install commands, and the main job's word about compiling on a first run."""

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency tomli reads TOML there
    import tomli as tomllib

import nbprop

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
README = (ROOT / "README.md").read_text()


def test_licence_is_an_spdx_expression_with_a_setuptools_that_reads_it():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    # PEP 639: an SPDX licence needs setuptools 77, and licence classifiers may not stand beside it.
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]
    assert not any(classifier.startswith("License ::") for classifier in project["classifiers"])


def test_one_version_number():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "nbprop.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", nbprop.__version__)
    assert importlib.metadata.version("nbprop") == nbprop.__version__


def test_every_package_directory_is_listed():
    """A wheel holds only the listed packages; an editable install would hide a missing one."""
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "nbprop").rglob("__init__.py")}
    found.add("nbprop.kernels")  # kernels/, installed under that name (package-dir)
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == found


def test_classifiers_name_the_supported_pythons():
    classifiers = PYPROJECT["project"]["classifiers"]
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert f"Programming Language :: Python :: {minimum}" in classifiers
    assert f"Programming Language :: Python :: {sys.version_info.major}.{sys.version_info.minor}" in classifiers


def test_every_extra_the_readme_names_exists_and_commands_use_the_venv():
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    named = set()
    for match in re.finditer(r"pip install -e '?\.\[([a-z,]+)\]'?", README):
        named.update(match.group(1).split(","))
    assert named and named <= extras, (named, extras)
    # Each install of nbprop is quoted (a shell may glob the brackets) and uses the virtual environment's pip.
    for line in README.splitlines():
        if "pip install -e" in line:
            assert re.search(r"\.venv/bin/pip install -e (\.|'\.\[[a-z,]+\]')(\s|$|`)", line), line


def test_main_job_says_when_it_compiles(tmp_path):
    """A first run (an empty kernel cache) tells stderr once that kernels compile and counts compilation in its
    time; a second run with the cache warm says neither."""
    command = [sys.executable, "-c", "import sys; sys.path.insert(0, 'examples'); import train_tiny_mlp; "
               "train_tiny_mlp.main(steps=2)"]
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = runs
    assert first.stderr.count("nbprop: compiling kernels") == 1, first.stderr
    assert "(including compilation)" in first.stdout
    assert "compiling" not in second.stderr, second.stderr
    assert re.search(r"trained in \d+\.\d+ s\n", second.stdout), second.stdout
