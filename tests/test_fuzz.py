"""Malformed input across the commands: every case must end in exit code 2, one line on stderr
starting with 'error:', no traceback, nothing on stdout and no output file left behind.

The cases are generated (each a distinct malformed input); the CLI runs in-process so a few
hundred cases take seconds.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import struct
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from amphisbaena.cli import app
from amphisbaena.model_files import SHIPPED_MODEL_DIR

N = 6
GOOD = np.random.default_rng(0).integers(0, 256, (N, 28, 14), dtype=np.uint8)

# A case builds its malformed input inside TMP and returns the CLI arguments; OUT is an empty
# directory for every output the command is asked to write.
Case = Callable[[Path, Path], list[str]]
CASES: dict[str, Case] = {}


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def restore_args(halves: Path, out: Path, *extra: str) -> list[str]:
    return ["restore", str(halves), "--out", str(out / "restored.npz"), "--grid", str(out / "grid.png"), *extra]


def halves_case(name: str, make: Callable[[Path], Path]) -> None:
    CASES[f"restore/{name}"] = lambda tmp, out: restore_args(make(tmp), out)


def raw_halves(name: str, payload: bytes) -> None:
    def make(tmp: Path) -> Path:
        path = tmp / "halves.npz"
        path.write_bytes(payload)
        return path

    halves_case(name, make)


def array_halves(name: str, **arrays) -> None:
    raw_halves(name, npz_bytes(**arrays))


# --- files that are not a halves archive at all
halves_case("missing file", lambda tmp: tmp / "nothing.npz")
halves_case("directory", lambda tmp: tmp)
raw_halves("empty file", b"")
raw_halves("text", b"left,right\n1,2\n")
def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


raw_halves("npy not npz", npy_bytes(GOOD))
raw_halves("gzipped npz", gzip.compress(npz_bytes(left=GOOD, right=GOOD)))
for seed in range(15):
    raw_halves(f"random bytes {seed}", np.random.default_rng(seed).integers(0, 256, 64 + 97 * seed, dtype=np.uint8).tobytes())
raw_halves("zip magic then junk", b"PK\x03\x04" + b"\x00" * 200)


def zip_with(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, payload in members.items():
            archive.writestr(member, payload)
    return buffer.getvalue()


raw_halves("zip with text members", zip_with({"left.npy": b"hello", "right.npy": b"world"}))
raw_halves("zip with a bad npy header", zip_with({"left.npy": b"\x93NUMPY\x01\x00\xff\xffjunk", "right.npy": b"\x93NUMPY"}))
valid = npz_bytes(left=GOOD, right=GOOD)
for cut in [1, 4, 10, 30, 50, 100, 150, 200, 300, 400, 500, 700, 1000, 1500, 2000, len(valid) - 200, len(valid) - 100, len(valid) - 22, len(valid) - 10, len(valid) - 1]:
    raw_halves(f"truncated at {cut}", valid[:cut])
flipped = bytearray(valid)
flipped[len(valid) // 2] ^= 0xFF
raw_halves("corrupted byte in the middle", bytes(flipped))

# --- keys
array_halves("no arrays")
array_halves("only left", left=GOOD)
array_halves("only right", right=GOOD)
array_halves("extra key", left=GOOD, right=GOOD, extra=GOOD)
array_halves("key leaked into halves", left=GOOD, right=GOOD, right_for_left=np.arange(N))
array_halves("capitalised keys", Left=GOOD, Right=GOOD)
array_halves("other names", a=GOOD, b=GOOD)

# --- shapes, dtypes, values, counts, objects: on either side
BAD_SHAPES = [(N,), (N, 28), (N, 28, 13), (N, 28, 15), (N, 14, 28), (N, 28, 28), (N, 2, 28, 14), (N, 28, 14, 1), (28, 14), (N, 1, 28, 13), (), (N, 3, 28, 14)]
BAD_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint32, np.bool_, np.complex64, "U1", "S1", "datetime64[s]", [("a", np.uint8)]]
BAD_FLOATS = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "negative": -0.5, "above one": 1.5, "not k/255": 0.5 / 255, "0..255 scale": 255.0}
for side, other in (("left", "right"), ("right", "left")):
    for shape in BAD_SHAPES:
        array_halves(f"{side} shape {shape}", **{side: np.zeros(shape, np.uint8), other: GOOD})
    for dtype in BAD_DTYPES:
        array_halves(f"{side} dtype {dtype}", **{side: np.zeros((N, 28, 14), dtype), other: GOOD})
    for label, value in BAD_FLOATS.items():
        for float_type in (np.float32, np.float64, np.float16):
            bad = np.zeros((N, 28, 14), float_type)
            bad[N // 2, 3, 4] = value
            array_halves(f"{side} {float_type.__name__} {label}", **{side: bad, other: GOOD})
    array_halves(f"{side} empty", **{side: GOOD[:0], other: GOOD})
    array_halves(f"{side} object array", **{side: np.array([{"x": 1}] * N, dtype=object), other: GOOD})
array_halves("both empty", left=GOOD[:0], right=GOOD[:0])
array_halves("both object", left=np.array([None] * N, dtype=object), right=np.array([None] * N, dtype=object))
for n_left, n_right in [(6, 5), (5, 6), (1, 2), (6, 1)]:
    array_halves(f"counts {n_left} vs {n_right}", left=GOOD[:n_left], right=GOOD[:n_right])


# --- the answer key given to restore
def key_case(name: str, payload: bytes | None) -> None:
    def build(tmp: Path, out: Path) -> list[str]:
        halves = tmp / "halves.npz"
        halves.write_bytes(valid)
        key = tmp / "key.npz"
        if payload is not None:
            key.write_bytes(payload)
        return restore_args(halves, out, "--key", str(key))

    CASES[f"restore --key/{name}"] = build


key_case("missing", None)
key_case("garbage", b"\x00\x01garbage")
key_case("wrong name", npz_bytes(key=np.arange(N)))
key_case("too short", npz_bytes(right_for_left=np.arange(N - 1)))
key_case("too long", npz_bytes(right_for_left=np.arange(N + 1)))
key_case("duplicates", npz_bytes(right_for_left=np.zeros(N, np.int64)))
key_case("negative", npz_bytes(right_for_left=np.arange(N) - 1))
key_case("out of range", npz_bytes(right_for_left=np.arange(N) + 1))
key_case("float", npz_bytes(right_for_left=np.arange(N, dtype=float)))
key_case("2-d", npz_bytes(right_for_left=np.arange(N)[None]))
key_case("object", npz_bytes(right_for_left=np.array([1] * N, dtype=object)))
key_case("empty", npz_bytes(right_for_left=np.arange(0)))
key_case("truncated", npz_bytes(right_for_left=np.arange(N))[:60])
key_case("npy", npy_bytes(np.arange(N)))


# --- options of restore
def option_case(name: str, *extra: str, out_name: str | None = None) -> None:
    def build(tmp: Path, out: Path) -> list[str]:
        halves = tmp / "halves.npz"
        halves.write_bytes(valid)
        if out_name:
            return ["restore", str(halves), *[e.format(out=out) for e in extra]]
        return restore_args(halves, out, *extra)

    CASES[f"restore option/{name}"] = build


option_case("k zero", "--k", "0")
option_case("k negative", "--k", "-4")
option_case("unknown assignment", "--assignment", "greedy")
option_case("out in a missing directory", "--out", "{out}/no/such/restored.npz", out_name="x")
option_case("grid in a missing directory", "--grid", "{out}/no/such/grid.png", out_name="x")


# --- the model directory
def model_case(name: str, mutate: Callable[[Path], None], variants: bool = False) -> None:
    """A copy of the shipped model, mutated; without VARIANTS only its fp32 graphs (so that
    restore's auto precision runs the mutated files, not the int8 ones beside them)."""

    def build(tmp: Path, out: Path) -> list[str]:
        halves = tmp / "halves.npz"
        halves.write_bytes(valid)
        model = tmp / "model"
        shutil.copytree(SHIPPED_MODEL_DIR, model, ignore=None if variants else shutil.ignore_patterns("fp16", "int8"))
        mutate(model)
        return restore_args(halves, out, "--model-dir", str(model))

    CASES[f"restore --model-dir/{name}"] = build


def edit_manifest(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(model: Path) -> None:
        manifest = json.loads((model / "manifest.json").read_text())
        change(manifest)
        (model / "manifest.json").write_text(json.dumps(manifest))

    return mutate


def replace_with_garbage(name: str) -> Callable[[Path], None]:
    def mutate(model: Path) -> None:
        (model / name).write_bytes(b"not an onnx model")
        manifest_path = (model / name).parent / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["sha256"][Path(name).name] = __import__("hashlib").sha256(b"not an onnx model").hexdigest()
        manifest_path.write_text(json.dumps(manifest))

    return mutate


model_case("directory missing", lambda model: shutil.rmtree(model))
model_case("no manifest", lambda model: (model / "manifest.json").unlink())
model_case("manifest not json", lambda model: (model / "manifest.json").write_text("{not json"))
model_case("manifest without sha256", edit_manifest(lambda m: m.pop("sha256")))
model_case("manifest without feature size", edit_manifest(lambda m: m.pop("feature_size")))
model_case("manifest is a list", lambda model: (model / "manifest.json").write_text("[]"))
for graph in ("left.onnx", "right.onnx", "head.onnx"):
    model_case(f"{graph} missing", lambda model, graph=graph: (model / graph).unlink())
    model_case(f"{graph} modified", lambda model, graph=graph: (model / graph).open("ab").write(b"\x00"))
    model_case(f"{graph} garbage with matching checksum", replace_with_garbage(graph))
    model_case(f"{graph} checksum missing", edit_manifest(lambda m, graph=graph: m["sha256"].pop(graph)))
    model_case(f"int8/{graph} garbage with matching checksum", replace_with_garbage(f"int8/{graph}"), variants=True)
model_case("int8/left.onnx modified", lambda model: (model / "int8/left.onnx").open("ab").write(b"\x00"), variants=True)


# --- make-halves
def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    return bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def make_halves_case(name: str, images: bytes | None = None, *extra: str, same_output: bool = False) -> None:
    def build(tmp: Path, out: Path) -> list[str]:
        args = ["make-halves", "-o", str(out / "halves.npz"), "--key", str(out / ("halves.npz" if same_output else "key.npz"))]
        if images is not None:
            (tmp / "images.idx").write_bytes(images)
            args += ["--images", str(tmp / "images.idx")]
        return args + [e.format(tmp=tmp, out=out) for e in extra]

    CASES[f"make-halves/{name}"] = build


digits = np.zeros((3, 28, 28), np.uint8)
make_halves_case("images missing", None, "--images", "{tmp}/none.idx")
make_halves_case("images empty", b"")
make_halves_case("images garbage", b"garbage bytes here")
make_halves_case("images float idx", idx_bytes(digits.astype(np.float32), 0x0D))
make_halves_case("images labels file", idx_bytes(np.zeros(3, np.uint8)))
make_halves_case("images 28x27", idx_bytes(np.zeros((3, 28, 27), np.uint8)))
make_halves_case("images 14x28", idx_bytes(np.zeros((3, 14, 28), np.uint8)))
make_halves_case("images zero digits", idx_bytes(np.zeros((0, 28, 28), np.uint8)))
make_halves_case("images truncated payload", idx_bytes(digits)[:-5])
make_halves_case("images truncated header", idx_bytes(digits)[:9])
make_halves_case("images extra bytes", idx_bytes(digits) + b"\x00")
make_halves_case("images gzip of garbage", gzip.compress(b"garbage"))
make_halves_case("images truncated gzip", gzip.compress(idx_bytes(digits))[:-8])
make_halves_case("count zero", idx_bytes(digits), "--count", "0")
make_halves_case("count negative", idx_bytes(digits), "--count", "-5")
make_halves_case("unknown split", None, "--split", "validation")
make_halves_case("output equals key", idx_bytes(digits), same_output=True)
CASES["make-halves/output directory missing"] = lambda tmp, out: ["make-halves", "-o", str(out / "no" / "h.npz"), "--key", str(out / "k.npz")]
CASES["make-halves/key directory missing"] = lambda tmp, out: ["make-halves", "-o", str(out / "h.npz"), "--key", str(out / "no" / "k.npz")]
CASES["make-halves/train split, data dir without files, offline"] = lambda tmp, out: ["make-halves", "--split", "train", "-o", str(out / "h.npz"), "--key", str(out / "k.npz"), "--data-dir", str(tmp / "empty")]

# --- train and export
CASES["train/epochs zero"] = lambda tmp, out: ["train", "--run-dir", str(out / "run"), "--epochs", "0"]
CASES["train/epochs negative"] = lambda tmp, out: ["train", "--run-dir", str(out / "run"), "--epochs", "-2"]
CASES["train/limit too small"] = lambda tmp, out: ["train", "--run-dir", str(out / "run"), "--limit", "5"]
CASES["train/limit negative"] = lambda tmp, out: ["train", "--run-dir", str(out / "run"), "--limit", "-100"]
CASES["train/run dir is a file"] = lambda tmp, out: ["train", "--run-dir", str((tmp / "file").write_text("x") and tmp / "file")]
CASES["train/validate every zero"] = lambda tmp, out: ["train", "--run-dir", str(out / "run"), "--validate-every", "0"]
CASES["train/teacher is the int8 variant"] = lambda tmp, out: ["train", "--run-dir", str(out / "run"), "--teacher", str(SHIPPED_MODEL_DIR / "int8")]
CASES["train/data dir without files, offline"] = lambda tmp, out: ["train", "--run-dir", str(out / "run"), "--data-dir", str(tmp / "empty")]


def export_case(name: str, checkpoint: Callable[[Path], None] | None, out_is_file: bool = False) -> None:
    def build(tmp: Path, out: Path) -> list[str]:
        run = tmp / "run"
        run.mkdir()
        if checkpoint is not None:
            checkpoint(run / "checkpoint.pt")
        target = out / "model"
        if out_is_file:
            target = tmp / "model-file"
            target.write_text("x")
        return ["export", "--run-dir", str(run), "--out-dir", str(target)]

    CASES[f"export/{name}"] = build


def torch_save(obj) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import torch

        torch.save(obj, path)

    return write


export_case("no checkpoint", None)
export_case("checkpoint garbage", lambda path: path.write_bytes(b"garbage"))
export_case("checkpoint empty", lambda path: path.write_bytes(b""))
export_case("checkpoint is a zip of junk", lambda path: path.write_bytes(zip_with({"a": b"b"})))
export_case("checkpoint is a list", torch_save([1, 2, 3]))
export_case("checkpoint without model", torch_save({"recipe": {}, "epoch": 1}))
export_case("checkpoint with unknown recipe keys", torch_save({"recipe": {"nope": 1}, "model": {}}))
export_case("checkpoint with mismatched weights", torch_save({"recipe": {}, "model": {"left_arm.stem.weight": [1.0]}, "val_accuracy": 0.1, "val_size": 1}))
export_case("out dir is a file", torch_save({"recipe": {}, "model": {}}), out_is_file=True)


def test_there_are_at_least_200_distinct_cases() -> None:
    assert len(CASES) >= 200, len(CASES)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input(name: str, tmp_path: Path, offline: None) -> None:
    if name.startswith("export/"):
        pytest.importorskip("torch", reason="export needs the [train] extra")
    tmp, out = tmp_path / "in", tmp_path / "out"
    tmp.mkdir()
    out.mkdir()
    args = CASES[name](tmp, out)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert list(out.iterdir()) == [], "an output was left behind"
