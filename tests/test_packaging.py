"""`pip install .` gives a tool that works outside the repository.

The wheel is built for real, with pip and build isolation as a user's `pip install .`
does, from a copy of exactly what the Dockerfile copies into its build stage (so the
image builds too), installed into a directory of its own and run from a directory that
is not the repository: `--version`, the packaged demo files, and `autoscaler demo`
itself against a real Prometheus.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoscaler import cli

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    site: Path  # pip install --target
    cwd: Path  # outside the repository

    def env(self) -> dict[str, str]:
        # TMPDIR: the demo keeps its work directory (logs) in the test's own
        return {
            **os.environ,
            "PYTHONPATH": str(self.site),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TMPDIR": str(self.cwd),
        }

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.site / "bin" / "autoscaler"), *args],
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def build_context(dest: Path) -> None:
    """Copy what the Dockerfile's build stage COPYs, at the same places (symlinks kept)."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() != "COPY" or "--from=" in rest:
            continue
        *sources, _ = shlex.split(rest)
        for pattern in sources:
            for src in REPO.glob(pattern):
                rel = src.relative_to(REPO)
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(
                        src, dest / rel, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(src, dest / rel)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    src, dist, site, cwd = root / "src", root / "dist", root / "site", root / "elsewhere"
    cwd.mkdir()
    build_context(src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    r = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = dist.glob("autoscaler-*.whl")
    r = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return Installed(wheel, site, cwd)


def test_the_source_tree_links_resolve() -> None:
    from autoscaler.demo import files

    assert files.prometheus_yml().resolve() == REPO / "prometheus.yml"
    assert files.example_config().resolve() == REPO / "examples" / "local.yaml"
    for rules in (REPO / "rules").glob("*.yml"):  # a new rule file needs its link too
        link = REPO / "autoscaler" / "demo" / "rules" / rules.name
        assert link.is_symlink() and link.resolve() == rules, f"no {link.relative_to(REPO)}"
    for link in (REPO / "autoscaler").rglob("*"):
        if link.is_symlink():
            assert link.exists(), f"{link} dangles"
            assert link.resolve().is_relative_to(REPO), f"{link} leaves the repository"


def test_the_wheel_ships_the_demo_files_as_real_copies(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
        shipped = {
            "autoscaler/demo/prometheus.yml": REPO / "prometheus.yml",
            "autoscaler/demo/local.yaml": REPO / "examples" / "local.yaml",
            **{f"autoscaler/demo/rules/{p.name}": p for p in (REPO / "rules").glob("*.yml")},
        }
        for name, source in shipped.items():
            assert name in names, f"{name} is not in the wheel"
            assert whl.read(name) == source.read_bytes(), f"{name} differs from {source}"
        assert not [n for n in names if "/tests/" in n or n.startswith("tests/")], "tests shipped"
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = re.findall(r"^Requires-Dist: (.*)$", whl.read(metadata).decode(), re.M)
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert line.strip() in requires, f"{line} is not a dependency of the wheel"
    assert 'matplotlib==3.11.2; extra == "plot"' in requires


def test_installed_tool_reports_its_version_from_its_own_files(installed: Installed) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    r = installed.run("--version")
    assert (r.returncode, r.stdout.strip()) == (0, f"autoscaler {version}"), r.stderr
    r = subprocess.run(
        [sys.executable, "-c", "import autoscaler.demo.files as f; print(f.prometheus_yml())"],
        cwd=installed.cwd,
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    path = Path(r.stdout.strip())
    assert r.returncode == 0 and path.is_relative_to(installed.site), r.stdout + r.stderr
    assert path.is_file() and not path.is_symlink()


@pytest.fixture
def session_killer() -> Iterator[list[subprocess.Popen[str]]]:
    """Whatever a test starts in its own session is gone afterwards, grandchildren too."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.skipif(not shutil.which("prometheus"), reason="prometheus not installed")
def test_installed_demo_runs_outside_the_repository(
    installed: Installed, session_killer: list[subprocess.Popen[str]]
) -> None:
    proc = subprocess.Popen(
        [str(installed.site / "bin" / "autoscaler"), "demo", "--duration", "4"],
        cwd=installed.cwd,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    session_killer.append(proc)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert re.search(r"^prometheus: http://127\.0\.0\.1:\d+", out, re.M), out
    assert re.search(r"^t=\s*\d+s demand=.* demo: replicas=\d+", out, re.M), out
    assert "stopping: load, autoscaler, replicas, Prometheus" in out


def test_simulate_plot_without_matplotlib_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One line, exit 2, and before any replay (which can take minutes)."""
    trace = tmp_path / "t.csv"
    trace.write_text("t_seconds,demand\n0,1\n60,2\n")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import` does when absent
    rc = cli.main(["simulate", "--trace", str(trace), "--plot", str(tmp_path / "p.png")])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("simulate: --plot needs matplotlib"), line
    assert "pip install 'autoscaler[plot]'" in line, line
    assert not (tmp_path / "p.png").exists()


def test_extras_pin_what_the_dev_requirements_pin() -> None:
    """The extras and requirements-dev.txt install the same versions."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    dev = {
        line.split("#")[0].strip()
        for line in (REPO / "requirements-dev.txt").read_text().splitlines()
    }
    for name, pins in extras.items():
        for pin in pins:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.!+]+", pin), f"[{name}] {pin} is not pinned"
            assert pin in dev, f"[{name}] {pin} is not in requirements-dev.txt"
