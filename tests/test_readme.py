"""The README's two commands, as a new user meets them.

The commands are read from README.md, so these tests break when it changes.
A user's shell is modelled as a minimal environment: PATH holds the system
Python and /usr/bin, never the virtualenv, and there is no PYTHONPATH. The
full run of the run command in a fresh clone is the fixture of
tests/test_pipeline_e2e.py; the checks here are quick.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> tuple[str, str]:
    """(run command, test command): the two bash blocks under '## The two commands'."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)
    assert len(blocks) >= 2, "README: '## The two commands' needs the run and the test command as ```bash blocks"
    return blocks[0].strip(), blocks[1].strip()


def user_env(**extra: str) -> dict[str, str]:
    """A fresh shell's environment: the system Python first on PATH, no virtualenv, no PYTHONPATH.
    pip's machine settings (PIP_*: where the local torch wheel lies) are kept, as a user's shell has them."""
    system_python = Path(sys._base_executable).parent  # the interpreter the venv was made from
    env = {"PATH": f"{system_python}:/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8", "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
    env |= {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    return env | extra


def sh(command: str, cwd: Path, timeout: float = 3600, **env: str) -> subprocess.CompletedProcess:
    """Run a command line the way a user types it into bash."""
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=user_env(**env), capture_output=True, text=True, timeout=timeout)


def fresh_clone(dest: Path) -> Path:
    """What a clone of the next commit holds: tracked files and new files git does not ignore."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def test_readme_has_the_run_and_the_test_command():
    run, test = readme_commands()
    assert run.startswith("bash scripts/setup.sh") and run.endswith("dvc repro")
    assert test.startswith("bash scripts/setup.sh") and "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = readme_commands()
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert test in lines, f".ci/run must run the README's test command as written: {test}"


def test_a_stage_without_judgeloop_installed_says_what_to_do(tmp_path):
    """DVC runs stages with the first `python` on PATH; without the venv, one line says how to fix it."""
    shutil.copytree(ROOT / "stages", tmp_path / "stages")
    res = sh("python3 stages/seed.py", tmp_path, timeout=120)
    assert res.returncode != 0
    assert "cannot import judgeloop" in res.stderr and "source .venv/bin/activate" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
