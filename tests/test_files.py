from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from amphisbaena import files


def test_save_npz_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.npz"

    def broken_savez(handle, **arrays):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(files.np, "savez", broken_savez)
    with pytest.raises(RuntimeError):
        files.save_npz(target, x=np.zeros(3))
    assert list(tmp_path.iterdir()) == []
