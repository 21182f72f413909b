"""DVC stage `evalset` (see dvc.yaml); the logic lives in judgeloop.pipeline."""

from _stage import stage_main

if __name__ == "__main__":
    stage_main("evalset")
