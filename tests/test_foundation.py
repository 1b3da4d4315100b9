"""The skeleton every chapter stands on: layout, import hygiene, the kmm command, presets."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import kmmlib
from kmmlib.cli import main
from kmmlib.errors import BadRequest
from kmmlib.machine import PRESETS, Machine
from kmmlib.units import format_size, parse_size

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_MODULES = ("matplotlib", "ipywidgets", "IPython")


def core_modules() -> list[str]:
    """Every kmmlib module except the Jupyter layer (viz, widgets)."""
    names = []
    for info in pkgutil.walk_packages(kmmlib.__path__, "kmmlib."):
        if info.name.startswith(("kmmlib.viz", "kmmlib.widgets")) or info.name == "kmmlib.__main__":
            continue
        names.append(info.name)
    return names


def test_layout_fixed_by_the_design_card():
    for path in ("notebooks", "kmmlib", "exercises", "exercises/solutions", "tests",
                 "environment.yml", "README.md", "pyproject.toml", "Makefile", "benchmarks",
                 ".ci/run", "notebooks/00_welcome.ipynb"):
        assert (ROOT / path).exists(), f"{path} is missing"


def test_core_imports_without_jupyter():
    # A fresh interpreter, so modules the test run already loaded do not hide an import.
    mods = core_modules()
    assert "kmmlib.machine" in mods and "kmmlib.cli" in mods
    code = ("import sys\n"
            f"for m in {mods!r}: __import__(m)\n"
            f"print([m for m in {JUPYTER_MODULES!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_plain_import_is_light():
    code = ("import sys, kmmlib\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'matplotlib', 'ipywidgets', 'IPython')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_viz_and_widgets_are_where_jupyter_lives():
    # The other half of the rule: the Jupyter layer exists as separate packages.
    assert (ROOT / "kmmlib" / "viz" / "__init__.py").exists()
    assert (ROOT / "kmmlib" / "widgets" / "__init__.py").exists()


def test_lazy_names():
    assert kmmlib.Machine is Machine
    with pytest.raises(AttributeError):
        kmmlib.no_such_thing  # noqa: B018


def test_kmm_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: kmm" in out and "exercises" in out


def test_python_dash_m_and_console_script_agree():
    a = subprocess.run([sys.executable, "-m", "kmmlib", "--help"], capture_output=True,
                       text=True, check=True).stdout
    kmm = Path(sys.executable).with_name("kmm")
    if not kmm.exists():
        pytest.skip(f"no console script beside {sys.executable} (kmmlib not pip-installed here)")
    b = subprocess.run([str(kmm), "--help"], capture_output=True, text=True, check=True).stdout
    assert a == b and "SUBCOMMAND" in a


def test_cli_errors_are_one_line_and_status_2(tmp_path, capsys):
    assert main(["exercises", "check", "--dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kmm exercises:") and "no such folder" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_consistent(name):
    m = Machine(name)
    p = m.preset
    zones = p.zones
    # Zones are in ascending pfn order and do not overlap.
    for a, b in zip(zones, zones[1:], strict=False):
        assert a.end_pfn <= b.start_pfn
    for z in zones:
        assert 0 < z.managed_pages <= z.present_pages <= z.spanned
    # RAM is the present pages of the zones.
    assert sum(z.present_pages for z in zones) == p.nr_pages
    assert name in m.describe()


def test_snapshot_preset_matches_the_snapshot_zoneinfo(snapshot_dir):
    # The preset copies the real machine's zones: read them back from its zoneinfo.
    text = (snapshot_dir / "zoneinfo").read_text()
    real = {}
    zone = None
    for line in text.splitlines():
        words = line.split()
        if line.startswith("Node"):
            zone = words[-1]
            real[zone] = {}
        elif zone and len(words) == 2 and words[0] in ("spanned", "present", "managed",
                                                       "start_pfn:"):
            real[zone][words[0].rstrip(":")] = int(words[1])
    for z in PRESETS["x86_64-snapshot"].zones:
        assert real[z.name] == {"spanned": z.spanned, "present": z.present_pages,
                                "managed": z.managed_pages, "start_pfn": z.start_pfn}


def test_machine_bad_input():
    with pytest.raises(BadRequest, match="unknown machine preset"):
        Machine("cray-1")
    with pytest.raises(BadRequest, match="a zone needs"):
        Machine.one_zone(0)
    assert Machine.one_zone("16M").nr_pages == 4096


def test_sizes():
    assert parse_size("1G") == 1 << 30
    assert parse_size("64k") == 65536
    assert parse_size(4096) == 4096
    assert format_size(24 << 30) == "24 GiB"
    assert format_size(1536 << 20) == "1.5 GiB"
    for bad in ("lots", "-1G", "1Q", -5):
        with pytest.raises(BadRequest):
            parse_size(bad)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in ci
    # The quick start's two commands come before anything else that is a command.
    first_block = readme.split("```")[1]
    assert [ln.strip() for ln in first_block.strip().splitlines()
            if ln.strip() and not ln.startswith(("#", "sh", "bash"))] == ["make lab", "make test"]
