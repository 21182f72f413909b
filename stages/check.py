"""DVC stage `check` (see dvc.yaml): params.yaml validates before any other stage removes its outputs."""

from _stage import stage_main

if __name__ == "__main__":
    stage_main("check")
