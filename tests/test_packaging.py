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
    assert "lgae_hep/py.typed" in names  # PEP 561: type hints are used by type checkers
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "BSD-3-Clause" in text


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

    # issue 23: the package and what it runs on, not a bare version number
    first = out.stdout.strip().splitlines()[0]
    assert first.startswith(f"lgae-hep {lgae_hep.__version__} (") and "torch" in out.stdout


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
def test_license_citation_and_version_are_consistent():
    import tomllib

    import lgae_hep

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"] == "BSD-3-Clause"
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("BSD 3-Clause License")
    assert "Neither the name of the copyright holder" in license_text  # clause 3
    assert project["version"] == lgae_hep.__version__
    cff = (ROOT / "CITATION.cff").read_text()
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed")
    data = yaml.safe_load(cff)
    assert data["cff-version"] == "1.2.0" and data["type"] == "software"
    assert str(data["version"]) == lgae_hep.__version__
    assert data["license"] == "BSD-3-Clause"
    paper = data["preferred-citation"]
    assert [a["family-names"] for a in paper["authors"]] == ["Hao", "Kansal", "Duarte",
                                                            "Chernyavskaya"]
    assert paper["year"] == 2022
    assert any(i["value"] == "arXiv:2212.07347" for i in paper["identifiers"])
    assert (ROOT / "lgae_hep" / "py.typed").is_file()
