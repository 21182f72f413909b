"""What every stage script imports: the stage runner, or one clear line when
the interpreter DVC found first on PATH does not have judgeloop installed."""

import sys

try:
    from judgeloop.pipeline import stage_main
except ModuleNotFoundError as e:
    sys.exit(
        f"{sys.executable} cannot import judgeloop ({e}). The stages run with the first `python` on PATH: "
        "activate the project's environment before `dvc repro` (`source .venv/bin/activate`, "
        "created by `bash scripts/setup.sh`)."
    )

__all__ = ["stage_main"]
