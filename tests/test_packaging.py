"""The distribution: one importable package ``mcp_ble`` built from the top-level folders."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


#: What a build must not see: local environments, caches and earlier build output.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "node_modules"
)


def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    # setuptools writes build/ and *.egg-info next to pyproject.toml: build from a copy so the
    # checkout stays clean
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(dist), str(source)],
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
    )
    # setuptools warns (e.g. a data folder missing from `packages`) as "<Category>Warning: ..."
    output = build.stdout + build.stderr
    warnings = [line for line in output.splitlines() if "Warning:" in line]
    assert warnings == [], warnings
    [wheel] = dist.glob("mcp_ble-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mcp_ble/core/app.py" in names
    assert "mcp_ble/config/default.toml" in names
    assert "mcp_ble/config/worlds/demo.toml" in names
    assert "mcp_ble/backends/simulated/world.py" in names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    declared = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[mcp_ble]" in declared  # built-ins are found through the same group as third parties
    for name in ("backend-simulated", "metrics", "retry", "pool", "chunking"):
        assert f"\n{name} = mcp_ble." in declared, name
    top_level = {name.split("/")[0] for name in names if not name.startswith("mcp_ble-")}
    assert top_level == {"mcp_ble"}, top_level
    # every package folder in the repository is in the wheel
    for folder, package in (("core", "core"), ("plugins", "plugins"), ("backends", "backends")):
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.relative_to(ROOT / folder).as_posix()
            assert f"mcp_ble/{package}/{relative}" in names, relative

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    # `--help` needs no third-party import, so the bare install (no deps) proves the entry point
    proc = subprocess.run(
        [str(env_dir / "bin" / "mcp-ble"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "serve" in proc.stdout and "demo" in proc.stdout
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print(u.find_spec('mcp_ble.core') is not None, "
            "u.find_spec('core'), u.find_spec('plugins'), u.find_spec('backends'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert probe.stdout.split() == ["True", "None", "None", "None"], probe.stderr


def test_editable_install_resolves_to_the_repository():
    import mcp_ble.core
    import mcp_ble.plugins.retry

    assert Path(mcp_ble.core.__file__).resolve() == ROOT / "core" / "__init__.py"
    assert Path(mcp_ble.plugins.retry.__file__).resolve() == ROOT / "plugins" / "retry.py"
