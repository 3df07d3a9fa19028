"""Backends: selection and fallback, TensorRT engine cache keys and profiles, and the GPU paths
where a GPU exists (skipped with the reason where it does not)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import halves_file
from typer.testing import CliRunner

from amphisbaena import shapes
from amphisbaena.cli import app
from amphisbaena.engines import tensorrt_build
from amphisbaena.engines.select import BACKENDS, BackendUnavailable, create_backend
from amphisbaena.halves import make_halves
from amphisbaena.model_files import SHIPPED_MODEL_DIR, load_model_files


def gpu_unavailable_reason() -> str | None:
    try:
        tensorrt_build.tensorrt_device()
    except tensorrt_build.EngineUnavailable as reason:
        return str(reason)
    return None


GPU_REASON = gpu_unavailable_reason()


@pytest.fixture(scope="module")
def small_halves(tmp_path_factory: pytest.TempPathFactory, test_digits: np.ndarray) -> Path:
    return halves_file(tmp_path_factory.mktemp("h") / "halves.npz", test_digits[:300], seed=2)


def test_auto_falls_back_to_ort_cpu_and_says_why(small_halves: Path) -> None:
    if GPU_REASON is None:
        pytest.skip("a GPU is present: auto picks a GPU backend here")
    result = CliRunner().invoke(app, ["restore", str(small_halves), "--backend", "auto"])
    assert result.exit_code == 0, result.stderr
    assert "restored 300 pairs with ort-cpu (int8); no GPU backend available, see --json" in result.stdout  # auto precision: int8 arms
    assert result.stderr == ""
    detailed = CliRunner().invoke(app, ["restore", str(small_halves), "--backend", "auto", "--json"])
    assert json.loads(detailed.stdout)["backend_fallbacks"][0].startswith("tensorrt: ")  # the reasons, in full


@pytest.mark.parametrize("name", ["tensorrt", "ort-cuda", "ort-trt"])
def test_unavailable_backend_is_a_one_line_error(name: str, small_halves: Path, tmp_path: Path) -> None:
    try:
        create_backend(name, load_model_files())
    except BackendUnavailable:
        pass
    else:
        pytest.skip(f"{name} is available here")
    result = CliRunner().invoke(app, ["restore", str(small_halves), "--backend", name, "--out", str(tmp_path / "r.npz")])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(f"error: {name}: ")
    assert not (tmp_path / "r.npz").exists()


def test_backend_order_is_fastest_first() -> None:
    assert BACKENDS[0] == "tensorrt" and BACKENDS[-1] == "ort-cpu"


def test_engine_profiles_cover_what_the_runtime_feeds() -> None:
    assert tensorrt_build.ARM_BATCH == shapes.ARM_BATCH
    assert (tensorrt_build.TILE_ROWS, tensorrt_build.TILE_COLS) == (shapes.TILE_ROWS, shapes.TILE_COLS)
    arm = tensorrt_build.profile_shapes("left", 200)["halves"]
    assert arm[0] == (1, 28, 14) and arm[2] == (shapes.ARM_BATCH, 28, 14)
    head = tensorrt_build.profile_shapes("head", 200)
    assert head["left"][2] == (shapes.TILE_COLS, 200) and head["right"][2] == (shapes.TILE_COLS, 200)
    assert head["left"][1] == (shapes.TILE_ROWS, 200)


def test_engine_key_changes_with_everything_an_engine_depends_on() -> None:
    device = tensorrt_build.Device("11.4.1", "NVIDIA H100", "9.0")
    shapes = tensorrt_build.profile_shapes("head", 200)
    base = tensorrt_build.key_digest(tensorrt_build.engine_key(device, "a" * 64, "fp32", shapes))
    variants = [
        tensorrt_build.engine_key(tensorrt_build.Device("10.13.0", "NVIDIA H100", "9.0"), "a" * 64, "fp32", shapes),
        tensorrt_build.engine_key(tensorrt_build.Device("11.4.1", "NVIDIA A100", "9.0"), "a" * 64, "fp32", shapes),
        tensorrt_build.engine_key(tensorrt_build.Device("11.4.1", "NVIDIA H100", "8.0"), "a" * 64, "fp32", shapes),
        tensorrt_build.engine_key(device, "b" * 64, "fp32", shapes),
        tensorrt_build.engine_key(device, "a" * 64, "fp16", shapes),
        tensorrt_build.engine_key(device, "a" * 64, "fp32", tensorrt_build.profile_shapes("head", 201)),
    ]
    digests = {tensorrt_build.key_digest(key) for key in variants}
    assert len(digests) == len(variants) and base not in digests


def test_engine_cache_reuses_matching_and_rebuilds_mismatched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in builder: a cached engine is reused only while its recorded key matches."""
    builds = []
    device = {"current": tensorrt_build.Device("11.4.1", "GPU A", "9.0")}
    monkeypatch.setattr(tensorrt_build, "tensorrt_device", lambda: (object(), device["current"]))

    def fake_build(trt, onnx_path, shapes, timing_cache):
        builds.append(onnx_path.name)
        return b"plan for " + onnx_path.name.encode()

    monkeypatch.setattr(tensorrt_build, "build_engine", fake_build)
    first = tensorrt_build.build_engines(SHIPPED_MODEL_DIR, tmp_path)
    assert len(builds) == 4 and all(path.read_bytes().startswith(b"plan for") for path in first.values())
    tensorrt_build.build_engines(SHIPPED_MODEL_DIR, tmp_path)
    assert len(builds) == 4, "a matching engine must be reused"
    key_file = first["head"].with_suffix(".json")
    key = json.loads(key_file.read_text())
    key["tensorrt"] = "10.0.0"
    key_file.write_text(json.dumps(key))
    tensorrt_build.build_engines(SHIPPED_MODEL_DIR, tmp_path)
    assert builds[4:] == ["head.onnx"], "an engine whose recorded key differs must be rebuilt"
    device["current"] = tensorrt_build.Device("11.4.1", "GPU B", "8.6")
    second = tensorrt_build.build_engines(SHIPPED_MODEL_DIR, tmp_path)
    assert len(builds) == 9 and set(second.values()).isdisjoint(first.values())


@pytest.mark.skipif(GPU_REASON is not None, reason=f"no TensorRT GPU here: {GPU_REASON}")
def test_tensorrt_backend_matches_onnxruntime(test_digits: np.ndarray, tmp_path: Path) -> None:
    from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
    from amphisbaena.engines.tensorrt_backend import TensorRTBackend
    from amphisbaena.runtime.restore import restore

    model = load_model_files()
    left, right, key = make_halves(test_digits[:2000], seed=0)
    gpu = restore(TensorRTBackend(model, tmp_path), left, right, key)
    cpu = restore(OnnxRuntimeBackend(model), left, right, key)
    assert abs(gpu.accuracy - cpu.accuracy) <= 0.002


def test_head_topk_graph_reduces_tiles_exactly(test_digits: np.ndarray) -> None:
    """head_topk.onnx (the device-side top-k the GPU backends use) returns each tile's best TOPK per
    row and column of head.onnx's scores; checked with onnxruntime on the CPU."""
    from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
    from amphisbaena.model_files import load_model_files
    from amphisbaena.runtime.features import arm_features
    from amphisbaena.shapes import TOPK

    backend = OnnxRuntimeBackend(load_model_files())
    assert backend.topk == TOPK
    left, right = test_digits[:40, :, :14].copy(), test_digits[100:160, :, 14:].copy()
    fl, fr = arm_features(backend, "left", left), arm_features(backend, "right", right)
    scores = backend.head(fl, fr)
    row_scores, row_partners, col_scores, col_partners = backend.head_topk(fl, fr)
    assert row_scores.shape == row_partners.shape == (40, TOPK) and col_scores.shape == (60, TOPK)
    np.testing.assert_allclose(row_scores, -np.sort(-scores, axis=1)[:, :TOPK], atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(scores, row_partners, 1), row_scores, atol=1e-5)
    np.testing.assert_allclose(col_scores, -np.sort(-scores.T, axis=1)[:, :TOPK], atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(scores.T, col_partners, 1), col_scores, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_head_beside_the_host_scores_exactly_as_the_head(test_digits: np.ndarray, threads: int) -> None:
    """The worker's head session (one onnxruntime thread fewer, `beside_host`) gives the same bits as the
    main one on every tile shape the runtime uses, so the stream, the rescoring and a dense restore agree;
    with one thread there is nothing to leave the host and the session is the same."""
    from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
    from amphisbaena.runtime.features import arm_features

    backend = OnnxRuntimeBackend(load_model_files(), threads=threads)
    assert (backend.head_beside_host is backend.sessions["head"]) == (threads == 1)
    left, right = test_digits[:300, :, :14].copy(), test_digits[300:2600, :, 14:].copy()
    fl, fr = arm_features(backend, "left", left), arm_features(backend, "right", right)
    for rows, cols in [(300, 2300), (1, 2300), (37, 5)]:
        np.testing.assert_array_equal(backend.head(fl[:rows], fr[:cols], beside_host=True), backend.head(fl[:rows], fr[:cols]))


def test_head_topk_profile_never_asks_for_tiles_smaller_than_k() -> None:
    from amphisbaena.engines.tensorrt_build import profile_shapes
    from amphisbaena.shapes import TOPK

    shapes = profile_shapes("head_topk", 646)
    assert shapes["left"][0] == (TOPK, 646) and shapes["right"][0] == (TOPK, 646)
    assert profile_shapes("head", 646)["left"][0] == (1, 646)


def test_auto_precision_runs_the_int8_arms_on_a_cpu_only(tmp_path: Path) -> None:
    """auto takes the shipped int8 arms on ort-cpu, fp32 where the model has no int8 variant;
    an explicit precision is honoured, and int8 on a GPU backend is refused with the reason."""
    import shutil

    from amphisbaena.engines.select import model_for
    from amphisbaena.errors import InputError

    model = load_model_files()
    assert model_for("ort-cpu", model, "auto").manifest["precision"] == "int8"
    assert model_for("ort-cpu", model, "fp32") is model
    assert model_for("tensorrt", model, "auto") is model  # TensorRT cannot run onnxruntime's int8 operators
    assert model_for("ort-cpu", model, "fp16").directory == SHIPPED_MODEL_DIR / "fp16"
    with pytest.raises(BackendUnavailable, match="ort-cpu only"):
        model_for("ort-cuda", model, "int8")
    bare = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL_DIR, bare, ignore=shutil.ignore_patterns("fp16", "int8"))
    assert model_for("ort-cpu", load_model_files(bare), "auto").directory == bare
    with pytest.raises(InputError, match="no int8 variant"):
        model_for("ort-cpu", load_model_files(bare), "int8")


def test_precision_option_is_checked_and_reported(small_halves: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["restore", str(small_halves), "--precision", "int4"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --precision must be one of auto, fp32, fp16, int8")
    fp32 = runner.invoke(app, ["restore", str(small_halves), "--backend", "ort-cpu", "--precision", "fp32"])
    assert fp32.exit_code == 0 and "restored 300 pairs with ort-cpu (fp32)" in fp32.stdout


@pytest.mark.slow
def test_shipped_int8_arms_restore_as_well_as_fp32(test_digits: np.ndarray) -> None:
    """The default CPU path (int8 arms) against fp32 on 2,000 test digits: the same accuracy
    within a few pairs (README, "Precision": 10k 88.39% against 88.28%)."""
    from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
    from amphisbaena.model_files import load_variant
    from amphisbaena.runtime.restore import restore

    model = load_model_files()
    left, right, key = make_halves(test_digits[:2000], seed=0)
    fp32 = restore(OnnxRuntimeBackend(model), left, right, key)
    int8 = restore(OnnxRuntimeBackend(load_variant(model, "int8")), left, right, key)
    assert int8.precision == "int8"
    assert abs(int8.accuracy - fp32.accuracy) <= 0.005
    assert np.mean(int8.right_for_left == fp32.right_for_left) > 0.98
