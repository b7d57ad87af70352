"""The distribution ships lgae_hep.models and lgae_hep.processors, and nothing at top level."""

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
def test_wheel_contains_subpackages(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), "-q"],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("lgae_hep-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lgae_hep/models/__init__.py" in names
    assert "lgae_hep/processors/__init__.py" in names
    assert "lgae_hep/lorentz/cg.py" in names
    tops = {n.split("/")[0] for n in names}
    assert "models" not in tops and "processors" not in tops
    assert any(n.startswith("lgae_hep/models/pretrained/") for n in names)


def test_installed_import_maps_subpackages():
    # Works for the editable install used in development and CI (and for a regular one).
    for name, folder in (("lgae_hep.models", "models"), ("lgae_hep.processors", "processors")):
        mod = importlib.import_module(name)
        assert Path(mod.__file__).parent.name == folder
    out = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('models'), "
         "u.find_spec('processors'))"],
        capture_output=True, text=True, check=True, cwd="/",
    )
    assert out.stdout.split() == ["None", "None"]


def test_cli_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "lgae_hep.cli", "--version"], capture_output=True, text=True,
        check=True,
    )
    import lgae_hep

    assert out.stdout.strip() == lgae_hep.__version__
