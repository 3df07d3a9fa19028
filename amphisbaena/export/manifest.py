"""Recording what export measured on a model's own graphs into its manifest (the format: `model_files`)."""

from __future__ import annotations

import json
from pathlib import Path

from amphisbaena.files import atomic_path
from amphisbaena.model_files import MANIFEST


def record_validation(directory: Path, values: dict) -> None:
    """Replace DIRECTORY's manifest validation with VALUES, measured on its own graphs."""
    record_calibration(directory, "validation", values)


def record_calibration(directory: Path, name: str, values: dict) -> None:
    """Add a calibration result (computed from the exported graphs) to DIRECTORY's manifest."""
    path = Path(directory) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest[name] = values
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
