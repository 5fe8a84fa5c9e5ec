"""scripts/bootstrap.sh's host-safety rules, run for real by bash against recording stand-ins for apt-get,
dpkg-query and systemctl (the system boundary: a test must not install or disable anything here)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _host(tmp_path: Path, *, engine: bool) -> tuple[dict[str, str], Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("grep", "chmod", "rm", "cat", "printf"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    stubs = {
        "dpkg-query": "exit 1",  # nothing installed
        "apt-get": f'echo "apt-get $*" >> {log}',
        "systemctl": f'echo "systemctl $*" >> {log}',
        "id": "echo 0",  # as root
    }
    if engine:
        stubs["dockerd"] = "exit 0"  # e.g. Docker CE with the NVIDIA Container Toolkit
    for name, body in stubs.items():
        f = bin_dir / name
        f.write_text(f"#!/bin/bash\n{body}\n")
        f.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "BOOTSTRAP_POLICY_RC": str(tmp_path / "policy-rc.d")}
    return env, log


def _install_test_packages(env: dict[str, str]) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    return subprocess.run([bash, "-c", f"source {ROOT / 'scripts/bootstrap.sh'}; install_test_packages"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_an_existing_docker_engine_is_left_alone_and_no_daemon_stays_enabled(tmp_path):
    env, log = _host(tmp_path, engine=True)
    r = _install_test_packages(env)
    assert r.returncode == 0, r.stderr
    assert "leaving it alone" in r.stdout
    calls = log.read_text().splitlines()
    install = next(c for c in calls if c.startswith("apt-get install"))
    assert "docker.io" not in install and "docker-registry" in install and "openssh-server" in install
    disabled = next(c for c in calls if c.startswith("systemctl disable --now"))
    assert "docker-registry.service" in disabled and "ssh.service" in disabled and "docker.service" not in disabled
    assert not (tmp_path / "policy-rc.d").exists()  # the start guard is removed again


def test_without_an_engine_docker_io_is_installed_without_starting_it(tmp_path):
    env, log = _host(tmp_path, engine=False)
    r = _install_test_packages(env)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert "docker.io" in next(c for c in calls if c.startswith("apt-get install"))
    assert "docker.service" in next(c for c in calls if c.startswith("systemctl disable --now"))


def test_an_old_python_is_refused_with_the_fix(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/bash\n[ \"$1\" = -V ] && echo 'Python 3.9.2' && exit 0\nexit 1\n")
    fake.chmod(0o755)
    r = subprocess.run([shutil.which("bash"), str(ROOT / "scripts/bootstrap.sh")], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHON": str(fake)})
    assert r.returncode == 1 and "needs Python >= 3.11" in r.stderr and "Python 3.9.2" in r.stderr


@pytest.mark.parametrize("line", [0, 1])
def test_readme_commands_use_the_project_virtualenv(line):
    cmd = (ROOT / "README.md").read_text().splitlines()[1 + line]
    assert ".venv/bin/" in cmd
