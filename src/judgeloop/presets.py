"""Named params sets: `judgeloop preset NAME` writes configs/presets/NAME.yaml into params.yaml.

A preset holds only the keys it changes, at any depth; lists and scalars
replace what params.yaml has, mappings merge. params.yaml keeps its comments
and order (ruamel.yaml round trip), the result is validated with the typed
config before the file is replaced, and `git diff params.yaml` shows what
changed. `dvc repro` or `dvc exp run` then runs with it.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, parse_params
from .io import atomic_path

PRESETS_DIR = Path("configs/presets")


def preset_path(name: str, root: Path) -> Path:
    """configs/presets/NAME.yaml for a bare name, else the file given."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        path = root / PRESETS_DIR / f"{name}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in (root / PRESETS_DIR).glob("*.yaml"))
            raise ConfigError(f"preset {name!r}: no {PRESETS_DIR / (name + '.yaml')}; presets: {', '.join(known) or 'none'}")
        return path
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"preset {name}: no such file")
    return path


def _merge(base: Any, overlay: dict[str, Any], prefix: str, changed: list[str]) -> None:
    for key, value in overlay.items():
        where = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, where + ".", changed)
        elif base.get(key) != value:
            base[key] = value
            changed.append(where)


def _float(representer: Any, x: float) -> Any:
    """1.0e-06, not ruamel's 1e-06, which YAML 1.1 readers (PyYAML, and so DVC's params) take for a string."""
    if math.isfinite(x):
        text = repr(x)
        mantissa, _, exponent = text.partition("e")
        if exponent and "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"
        return representer.represent_scalar("tag:yaml.org,2002:float", text)
    return representer.represent_float(x)


def merged_text(name: str, root: str | Path = ".", params_file: str = "params.yaml") -> tuple[str, list[str], Path]:
    """params.yaml with the preset merged in (comments kept), the dotted keys that changed, and params.yaml's path.

    Raises ConfigError when the preset or the result is invalid."""
    from ruamel.yaml import YAML

    root = Path(root)
    source = preset_path(name, root)
    try:
        overlay = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({e})") from None
    if not isinstance(overlay, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of params")
    target = root / params_file
    rt = YAML()  # round trip: comments and key order survive
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)  # params.yaml's own style
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    rt.representer.add_representer(float, _float)
    data = rt.load(target.read_text(encoding="utf-8"))
    changed: list[str] = []
    _merge(data, overlay, "", changed)
    buf = io.StringIO()
    rt.dump(data, buf)
    text = buf.getvalue()
    parse_params(yaml.safe_load(text), f"{target} with preset {source}")
    return text, changed, target


def apply_preset(name: str, root: str | Path = ".", params_file: str = "params.yaml") -> list[str]:
    """Merge the preset into params.yaml; returns the dotted keys that changed. Invalid: nothing is written."""
    text, changed, target = merged_text(name, root, params_file)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return changed
