"""CI cannot skip what must run: under CI=true a test whose program is missing fails instead of skipping."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

PROBE = '''
from conftest import needs_jackd, needs_sclang, needs_scsynth


@needs_scsynth
def test_needs_scsynth():
    pass


@needs_sclang
def test_needs_sclang():
    pass


@needs_jackd
def test_needs_jackd():
    pass
'''


@pytest.mark.parametrize("ci, outcome", [("true", r"3 (failed|errors)"), ("", r"3 skipped")])
def test_a_missing_program_skips_only_outside_ci(tmp_path, ci, outcome):
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBE)
    bin_dir = tmp_path / "bin"  # a PATH with pgrep (the session fixture uses it) and no audio programs
    bin_dir.mkdir()
    (bin_dir / "pgrep").symlink_to(shutil.which("pgrep"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHENV_")}
    env.update(PATH=str(bin_dir), CI=ci)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)  # fmt: skip
    assert re.search(outcome, proc.stdout), proc.stdout[-2000:]
    assert (proc.returncode != 0) == bool(ci)  # under CI the run fails
    if ci:
        assert "in CI every test must run" in proc.stdout
