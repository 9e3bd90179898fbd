"""Plugins are found through entry points only: checked in a fresh, isolated venv.

The venv is made without ``--system-site-packages``: the system's ``potpyri*``
distributions (editable installs of the core and of all four plugins) must not be seen,
or the test would prove nothing about entry-point discovery.

How it works offline
--------------------
- Third-party libraries (numpy, astropy, pydantic, pluggy, click, ...) come from the
  interpreter running the tests: a folder of symlinks to every entry of its
  site-packages *except* ``potpyri*``, ``__editable__*`` and ``*.pth`` is put on the venv's
  path by a ``.pth`` file. So the venv sees no ``potpyri*.dist-info`` of the system and no
  system editable finder.
- ``pip install --no-build-isolation -e`` cannot be used here: the machine's setuptools
  (65.5) needs the ``wheel`` package to build any wheel (editable or not; "invalid command
  'bdist_wheel'") and ``wheel`` is not installed, while build isolation would need the
  network. Instead the test builds the wheels itself with :mod:`zipfile` (a wheel is a zip
  with a ``*.dist-info`` folder; an editable wheel is a ``.pth`` file, as in PEP 660), from
  the ``[project]`` table of each ``pyproject.toml``, and installs them with the real pip
  (``pip install --no-index --no-deps``), which writes the dist-info, the entry points and
  the ``potpyri`` console script into the venv.
- The tests run the venv's ``potpyri`` command in subprocesses, so they see exactly what a
  user who ran ``pip install potpyri-gemini potpyri-testscope`` would see.

Tests in this module share one venv and run in file order: each stage installs more
plugins (core + gemini, then testscope, then the broken and crashing plugins). With
testscope installed, a TESTCAM night is simulated and reduced through that venv's
``potpyri`` command and checked against the simulator's truth.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from potpyri_core.filelist import read_file_list
from potpyri_core.simulate.truthcheck import TruthCheck

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL = ROOT / "tests" / "external_plugin"
GEMINI_INSTRUMENTS = {"GMOS-N", "GMOS-S", "F2"}


# ---------------------------------------------------------------- wheel building (stdlib only)
def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _entry_points_text(project: dict) -> str:
    sections = dict(project.get("entry-points", {}))
    if project.get("scripts"):
        sections["console_scripts"] = project["scripts"]
    lines = []
    for group, entries in sections.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
        lines.append("")
    return "\n".join(lines)


def build_wheel(project_dir: Path, packages: list[str], out_dir: Path, editable: bool, link_root: Path) -> Path:
    """Build a pure-Python wheel of ``project_dir`` from its ``[project]`` table.

    ``editable`` writes a ``.pth`` pointing at a folder of symlinks to the source packages
    (only the packages: the source tree's ``*.egg-info`` must not become a second
    distribution); otherwise the package files are copied into the wheel.
    """
    project = tomllib.loads((project_dir / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    stem = name.replace("-", "_")
    files: dict[str, bytes] = {}
    if editable:
        links = link_root / stem
        links.mkdir(parents=True, exist_ok=True)
        for package in packages:
            (links / package).symlink_to(project_dir / package, target_is_directory=True)
        files[f"__editable__.{stem}-{version}.pth"] = f"{links}\n".encode()
    else:
        for package in packages:
            for path in sorted((project_dir / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    files[path.relative_to(project_dir).as_posix()] = path.read_bytes()
    info = f"{stem}-{version}.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: potpyri-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/entry_points.txt"] = _entry_points_text(project).encode()
    record = [_record_line(arc, data) for arc, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = out_dir / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for arc, data in files.items():
            zf.writestr(arc, data)
    return wheel


# ---------------------------------------------------------------- the venv
class Venv:
    """A fresh venv that sees the system's third-party libraries but no potpyri distribution."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "venv" / "bin"
        self.wheels = root / "wheels"
        self.links = root / "editable"
        self.wheels.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
        self.env |= {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1",
                     "PIP_CONSTRAINT": "", "PIP_FIND_LINKS": "", "PIP_NO_WARN_SCRIPT_LOCATION": "1"}

    def create(self) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.root / "venv")], check=True)
        import astropy
        import click
        import pluggy
        import pydantic

        system_sites = {Path(m.__file__).resolve().parents[1] for m in (np, astropy, click, pluggy, pydantic)}
        libs = self.root / "system-libs"
        libs.mkdir()
        for site_dir in system_sites:
            for entry in site_dir.iterdir():
                low = entry.name.lower()
                if low.startswith(("potpyri", "__editable__")) or low.endswith(".pth"):
                    continue
                if not (libs / entry.name).exists():
                    (libs / entry.name).symlink_to(entry)
        purelib = self.python("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
        # the venv's pip is the system pip, seen through the same folder (no ensurepip: faster)
        (Path(purelib) / "_potpyri_test_system_libs.pth").write_text(f"{libs}\n")

    def python(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "python"), *args], env=self.env, cwd=self.root,
                              capture_output=True, text=True, check=check)

    def install(self, project_dir: Path, packages: list[str], editable: bool = False) -> None:
        wheel = build_wheel(project_dir, packages, self.wheels, editable, self.links)
        result = self.python("-m", "pip", "install", "--no-index", "--no-deps", str(wheel), check=False)
        assert result.returncode == 0, result.stdout + result.stderr

    def potpyri(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "potpyri"), *args], env=self.env, cwd=self.root,
                              capture_output=True, text=True, check=False)


def listed_instruments(stdout: str) -> list[str]:
    """Instrument names of ``potpyri instruments`` (first column, header line skipped)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines and lines[0].startswith("instrument"), stdout
    return [line.split()[0] for line in lines[1:]]


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Venv:
    v = Venv(tmp_path_factory.mktemp("isolated"))
    v.create()
    v.install(ROOT, ["potpyri_core"], editable=True)
    v.install(ROOT / "plugins" / "potpyri-gemini", ["potpyri_gemini"], editable=True)
    return v


@pytest.fixture(scope="module")
def venv_testscope(venv) -> Venv:
    venv.install(EXTERNAL, ["potpyri_testscope"])
    return venv


@pytest.fixture(scope="module")
def venv_broken(venv_testscope) -> Venv:
    venv_testscope.install(EXTERNAL / "broken", ["potpyri_broken"])
    venv_testscope.install(EXTERNAL / "crashing", ["potpyri_crashing"])
    return venv_testscope


# ---------------------------------------------------------------- tests (file order matters)
def test_venv_is_isolated_from_the_system_potpyri_installs(venv):
    code = ("import importlib.metadata as m; "
            "print(sorted(d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].startswith('potpyri')))")
    assert venv.python("-c", code).stdout.strip() == "['potpyri-core', 'potpyri-gemini']"
    code = "import importlib.util as u; print([u.find_spec(p) is None for p in ('potpyri_keck', 'potpyri_mmt')])"
    assert venv.python("-c", code).stdout.strip() == "[True, True]"


def test_only_the_gemini_instruments_are_listed(venv):
    result = venv.potpyri("instruments")
    assert result.returncode == 0, result.stderr
    assert sorted(listed_instruments(result.stdout)) == sorted(GEMINI_INSTRUMENTS)
    assert warning_lines(result.stderr) == []
    for line in result.stdout.splitlines()[1:]:
        assert line.split()[-2:] == ["potpyri-gemini", "0.1.0"], line


def test_asking_for_a_keck_instrument_names_the_plugin_to_install(venv):
    result = venv.potpyri("sort", "MOSFIRE", str(venv.root))
    assert result.returncode == 2
    assert "unknown instrument 'MOSFIRE'; installed: F2, GMOS-N, GMOS-S." in result.stderr
    assert "pip install potpyri-keck" in result.stderr


def test_external_plugin_adds_testcam(venv_testscope):
    result = venv_testscope.potpyri("instruments")
    assert result.returncode == 0, result.stderr
    assert sorted(listed_instruments(result.stdout)) == sorted(GEMINI_INSTRUMENTS | {"TESTCAM"})
    testcam = next(line for line in result.stdout.splitlines() if line.startswith("TESTCAM"))
    assert testcam.split()[1:] == ["tcam", "potpyri-testscope", "0.0.1"]
    assert warning_lines(result.stderr) == []


def _write_testcam(path: Path, imagetyp: str, obj: str, exptime: float, mjd: float) -> None:
    header = fits.Header({"INSTRUME": "TestCam", "IMAGETYP": imagetyp, "OBJECT": obj, "EXPTIME": exptime,
                          "FILTER": "sdss_r", "MJD-OBS": mjd, "CCDSUM": "1 1"})
    fits.PrimaryHDU(np.zeros((8, 8), np.uint16), header=header).writeto(path)


def test_sort_testcam_night_with_the_external_plugin(venv_testscope, tmp_path):
    night = tmp_path / "night"
    night.mkdir()
    _write_testcam(night / "tc0001.fits", "bias", "Bias", 0.0, 60000.01)
    _write_testcam(night / "tc0002.fits", "bias", "Bias", 0.0, 60000.02)
    _write_testcam(night / "tc0003.fits", "flat", "DomeFlat", 5.0, 60000.03)
    _write_testcam(night / "tc0004.fits", "object", "NGC 1234", 60.0, 60000.04)
    _write_testcam(night / "tc0005.fits", "focus", "Focus", 1.0, 60000.05)

    result = venv_testscope.potpyri("sort", "tcam", str(night), "--proc", "1")
    assert result.returncode == 0, result.stderr
    assert f"wrote {night / 'file_list.txt'}" in result.stdout
    table = read_file_list(night / "file_list.txt")
    types = dict(zip(table["File"], table["Type"], strict=True))
    assert types == {"tc0001.fits": "BIAS", "tc0002.fits": "BIAS", "tc0003.fits": "FLAT",
                     "tc0004.fits": "SCIENCE", "tc0005.fits": "BAD"}
    row = table[list(table["File"]).index("tc0004.fits")]
    assert (row["Target"], row["Filter"], row["Amp"], row["Binning"], row["Exp"]) == ("NGC_1234", "r", "1", "1x1", 60.0)
    assert row["CalType"] == "sci_r_1_1x1"
    bad = table[list(table["File"]).index("tc0005.fits")]
    assert "matches_no_frame-typing_rule_of_TESTCAM" in bad["Reason"]


def test_simulate_and_reduce_a_single_hdu_testcam_night_through_the_cli(venv_testscope, tmp_path):
    night = tmp_path / "night"
    result = venv_testscope.potpyri("simulate", "TESTCAM", str(night), "--n-science", "4", "--seed", "8")
    assert result.returncode == 0, result.stderr
    raw = sorted(night.glob("tc*.fits"))
    assert len(raw) == 10  # 3 bias, 3 flats, 4 science
    for path in raw:
        with fits.open(path) as hdul:
            assert len(hdul) == 1 and hdul[0].data.shape == (1024, 1056), path.name  # binned 2x2, overscan
            assert "EXTNAME" not in hdul[0].header and hdul[0].header["CCDSUM"] == "2 2"

    refcat = night / "refcat"
    result = venv_testscope.potpyri("reduce", "TESTCAM", str(night), "--catalog", str(refcat / "gaia_dr3.ecsv"),
                                    "--catalog", str(refcat / "ps1.ecsv"), "--proc", "2",
                                    "-p", "column_pattern.clip_sigma=3.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sum(line.startswith("column_pattern") for line in result.stdout.splitlines()) == 4, result.stdout
    stacks = sorted((night / "red").glob("*.stk.fits"))
    assert len(stacks) == 1, result.stdout

    # the science, against the simulator's truth
    check = TruthCheck(night, stacks[0], {}, read_noise=5.0)
    rms, matched = check.astrometric_rms()
    assert matched > 100 and rms <= 0.1, (rms, matched)
    assert check.header["ZPTNSTAR"] >= 30
    # TESTCAM's stars are ~3 binned pixels wide; the core's aperture fluxes of such
    # undersampled stars come out ~4 % bright (GMOS, 5 px, is within 1 %): hence 0.08 mag
    assert abs(check.zero_point_error()) <= 0.08, check.header["ZPTMAG"]

    # the plugin's sky override ran in the worker processes, its stage got the -p value
    workspace = sorted((night / "red" / "workspace").glob("*_red.fits"))
    assert len(workspace) == 4
    for path in workspace:
        header = fits.getheader(path)
        assert header["SKYMODEL"] == "plane", path.name
        assert header["COLPSIG"] == 3.5 and header["COLPATRN"] > 0, path.name
    params = json.loads(Table.read(stacks[0], hdu="PROVENANCE").meta["PARAMS"])
    assert params["column_pattern"] == {"clip_sigma": 3.5, "min_pixels": 64}  # -p, then the TOML
    assert params["cosmic_rays"]["objlim"] == 8.0  # [params.cosmic_rays] of testcam.toml


def test_broken_and_crashing_plugins_are_one_warning_line_each(venv_broken):
    result = venv_broken.potpyri("instruments")
    assert result.returncode == 0, result.stderr
    assert sorted(listed_instruments(result.stdout)) == sorted(GEMINI_INSTRUMENTS | {"TESTCAM"})
    warnings = warning_lines(result.stderr)
    assert len(warnings) == 3, result.stderr
    broken = [w for w in warnings if "potpyri-broken" in w]
    crashing = [w for w in warnings if "potpyri-crashing" in w]
    assert len(broken) == 2 and len(crashing) == 1, warnings
    assert all("BROKENCAM" in w and "brokencam.toml" in w for w in broken)
    assert any("'pixel_scale'" in w and "greater than 0" in w and "(got -1)" in w for w in broken)
    assert any("'detector.amplifiers.0.gain'" in w and "(got 'high')" in w for w in broken)
    assert "ImportError" in crashing[0] and "no_such_dependency" in crashing[0]


def test_good_instruments_still_sort_next_to_broken_plugins(venv_broken, tmp_path):
    night = tmp_path / "night"
    night.mkdir()
    _write_testcam(night / "tc0001.fits", "object", "M31", 30.0, 60000.5)
    result = venv_broken.potpyri("sort", "TESTCAM", str(night), "--proc", "1")
    assert result.returncode == 0, result.stderr
    assert "SCIENCE 1" in result.stdout
    assert len(warning_lines(result.stderr)) == 3
