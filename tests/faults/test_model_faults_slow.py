"""Faults that need the real seed model (SmolLM2-135M): an interrupted training run, and a
models/it0 whose weights are cut short. Tiny settings (2 SFT examples,
max_steps 3, batch 1); the seed checkpoint comes from the session fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from .conftest import ROOT, assert_fails, assert_ok, assert_untouched, stage_env

pytestmark = pytest.mark.slow

DVC_YAML = """stages:
  train:
    cmd: {python} {root}/stages/train.py --iteration it1
    deps:
      - data/it1/sft.parquet
      - data/it1/dpo.parquet
    params:
      - training
    outs:
      - models/it1
"""


def dvc(project, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=project.root, env=stage_env(),
                          capture_output=True, text=True, **kw)


class Output:
    """Collects a child's merged output in a thread (tqdm writes \\r, not lines)."""

    def __init__(self, proc: subprocess.Popen):
        self.text = ""
        self._t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._t.start()

    def _read(self, proc):
        for chunk in iter(lambda: proc.stdout.read(256), ""):
            self.text += chunk

    def wait_for(self, needle: str, proc: subprocess.Popen, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            if needle in self.text:
                return True
            time.sleep(0.2)
        return needle in self.text


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid -= 1


def test_train_killed_mid_run_leaves_no_model_and_reruns(project, seed_model):
    """`dvc repro train` SIGKILLed after the first optimizer step: no models/it1 (DVC does not
    consider the stage done), no temporaries kept by the next run, and the rerun completes."""
    (project.root / "models").mkdir()
    (project.root / "models" / "it0").symlink_to(seed_model)
    project.write_sft(n=2)
    project.set_params({"training": {"algo": "sft", "init": "seed", "max_steps": 3, "per_device_train_batch_size": 1, "max_length": 256,
                                     "launcher": "python", "lora": {"enabled": False}},
                        "iterations": {"it1": {"prev": "it0"}}})
    (project.root / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable, root=ROOT))
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@t"], ["git", "config", "user.name", "t"]):
        subprocess.run(cmd, cwd=project.root, check=True)
    assert dvc(project, "init", "-q").returncode == 0
    (project.root / ".gitignore").write_text("/models/it0\n")

    proc = subprocess.Popen([str(Path(sys.executable).parent / "dvc"), "repro", "train"], cwd=project.root, env=stage_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = Output(proc)
    started = out.wait_for("'loss'", proc, timeout=900)  # the Trainer's log line after step 1 of 3
    assert started and proc.poll() is None, f"training did not reach step 1 while running:\n{out.text[-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage under it, as a kill -9 of the job would
    proc.wait()

    assert not (project.root / "models" / "it1").exists()
    assert not (project.root / "metrics" / "it1" / "train.json").exists()
    lock = project.root / "dvc.lock"
    assert not lock.exists() or "train" not in yaml.safe_load(lock.read_text()).get("stages", {})
    status = dvc(project, "status")
    assert "train" in status.stdout and "up to date" not in status.stdout.lower(), status.stdout

    # a temporary checkpoint left by a process killed while saving (SIGKILL cannot clean up after itself)
    stale = project.root / "models" / f".it1.{_dead_pid()}.abcd1234.dir.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half a checkpoint")

    rerun = dvc(project, "repro", "train", timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert (project.root / "models/it1/model.safetensors").exists()
    card = json.loads((project.root / "models/it1/judgeloop_manifest.json").read_text())
    assert card["kind"] == "trained" and card["hyperparameters"]["max_steps"] == 3
    assert json.loads((project.root / "stats/it1/train.json").read_text())["steps"] == 3
    assert not stale.exists() and project.temporaries() == []
    assert "up to date" in dvc(project, "status").stdout.lower()


def test_truncated_seed_weights(project, seed_model):
    """models/it0 copied short (an interrupted copy): judge names the folder; with the checkpoint whole, it completes."""
    it0 = project.root / "models" / "it0"
    shutil.copytree(seed_model, it0)
    data = (it0 / "model.safetensors").read_bytes()
    (it0 / "model.safetensors").write_bytes(data[: len(data) // 3])
    project.write_pairs(n=1)
    project.set_params({"generation": {"backend": "transformers", "device": "cpu", "cache_dir": None, "batch_size": 2},
                        "judging": {"samples": 1, "max_tokens": 8, "verdict_fallback": "forced"},
                        "iterations": {"it1": {"prev": "it0"}}})
    before = project.outputs()
    assert_fails(project.stage("judge", "--iteration", "it1", timeout=900),
                 "stage judge failed: models/it0: cannot load the model weights")
    assert_untouched(project, before)
    (it0 / "model.safetensors").write_bytes(data)
    assert_ok(project.stage("judge", "--iteration", "it1", timeout=900))
    assert pq.read_table(project.root / "data/it1/judgments.parquet").num_rows == 2
