"""Quantizing the generated models with llama.cpp, and loading the result in the engine."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from codellama_lsp.quant.engine import CompletionRequest, Engine, EngineConfig
from codellama_lsp.quant.errors import ModelError
from codellama_lsp.quant.quantize import QUANT_TYPES, quantize
from tests.support.synthetic import fetch_llama_vocab, write_model

#: llama_ftype values written to ``general.file_type`` (llama.h).
FTYPE_Q8_0 = 7
FTYPE_Q4_K_M = 15


@pytest.fixture(scope="module")
def f16_model_path(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model written with F16 matrices (the vocabulary sits beside the F32 one)."""
    vocab = fetch_llama_vocab(model_path.parent)
    return write_model(tmp_path_factory.mktemp("f16") / "tiny-f16.gguf", vocab, dtype="f16")


def _gguf(path: Path) -> tuple[int, dict[str, tuple[str, list[int]]]]:
    """``general.file_type`` and each tensor's (type name, shape) as GGUF records them."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    file_type = int(reader.fields["general.file_type"].contents())
    tensors = {t.name: (t.tensor_type.name, [int(n) for n in t.shape]) for t in reader.tensors}
    return file_type, tensors


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _completes(path: Path) -> str:
    engine = Engine.load(EngineConfig(str(path), n_ctx=2048))
    try:
        result = engine.complete(
            CompletionRequest(prefix="def add(a, b):\n    ", suffix="", max_tokens=8)
        )
    finally:
        engine.close()
    return result.text


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".partial")]


def test_f32_to_q8_0(model_path: Path, tmp_path: Path) -> None:
    before = _digest(model_path)
    dst = tmp_path / "tiny-q8_0.gguf"
    result = quantize(model_path, dst, "q8_0")  # type names are case-insensitive

    assert result.qtype == "Q8_0"
    assert result.dst == dst
    assert result.src_bytes == model_path.stat().st_size
    assert result.dst_bytes == dst.stat().st_size
    assert result.dst_bytes < result.src_bytes / 3  # 8.5 bits per weight instead of 32
    assert result.seconds >= 0
    assert _digest(model_path) == before
    assert _leftovers(tmp_path) == []

    file_type, tensors = _gguf(dst)
    assert file_type == FTYPE_Q8_0
    # Q8_0 blocks are 32 wide, so every matrix of the tiny model takes it; norms stay F32.
    for name, (kind, shape) in tensors.items():
        assert kind == ("F32" if len(shape) == 1 else "Q8_0"), name
    assert _completes(dst).strip()


def test_f16_to_q4_k_m(f16_model_path: Path, tmp_path: Path) -> None:
    dst = tmp_path / "tiny-q4_k_m.gguf"
    result = quantize(f16_model_path, dst, "Q4_K_M", threads=2)

    assert result.qtype == "Q4_K_M"
    assert result.dst_bytes < result.src_bytes * 0.6
    file_type, tensors = _gguf(dst)
    assert file_type == FTYPE_Q4_K_M
    kinds = Counter(kind for kind, _ in tensors.values())
    assert kinds["F32"] == 5  # the norm weights
    # K-quant super-blocks are 256 wide: only rows of 256 (ffn_down, whose rows are
    # n_ff long) get Q4_K/Q6_K; the 128-wide rows fall back to Q5_0/Q8_0.
    for name, (kind, shape) in tensors.items():
        if len(shape) == 1:
            continue
        if shape[0] % 256 == 0:
            assert kind in {"Q4_K", "Q6_K"}, name
        else:
            assert kind in {"Q5_0", "Q8_0"}, name
    assert tensors["blk.0.ffn_down.weight"][0] == "Q4_K"
    assert _completes(dst).strip()


def test_replaces_an_existing_output(model_path: Path, tmp_path: Path) -> None:
    dst = tmp_path / "model.gguf"
    dst.write_bytes(b"old")
    quantize(model_path, dst, "Q4_0")
    assert dst.read_bytes()[:4] == b"GGUF"
    assert _leftovers(tmp_path) == []


def test_missing_source(tmp_path: Path) -> None:
    src = tmp_path / "absent.gguf"
    with pytest.raises(ModelError, match="not found") as info:
        quantize(src, tmp_path / "out.gguf", "Q8_0")
    assert str(src) in str(info.value)


def test_not_a_gguf(not_gguf_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a GGUF") as info:
        quantize(not_gguf_path, tmp_path / "out.gguf", "Q8_0")
    assert str(not_gguf_path) in str(info.value)


def test_unknown_type_lists_the_valid_ones(model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown quantization type 'Q3_K'") as info:
        quantize(model_path, tmp_path / "out.gguf", "Q3_K")
    for name in QUANT_TYPES:
        assert name in str(info.value)
    assert not (tmp_path / "out.gguf").exists()


def test_refuses_to_overwrite_the_source(model_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "model.gguf"
    src.symlink_to(model_path)
    for dst in (src, model_path, tmp_path / "." / "model.gguf"):
        with pytest.raises(ModelError, match="overwrite the source") as info:
            quantize(src, dst, "Q8_0")
        assert str(dst) in str(info.value)


def test_missing_output_directory(model_path: Path, tmp_path: Path) -> None:
    dst = tmp_path / "no" / "such" / "out.gguf"
    with pytest.raises(ModelError, match="does not exist") as info:
        quantize(model_path, dst, "Q8_0")
    assert str(dst) in str(info.value)


def test_llama_cpp_failure_leaves_no_output(corrupt_model_path: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.gguf"
    with pytest.raises(ModelError, match=r"llama\.cpp failed to quantize") as info:
        quantize(corrupt_model_path, dst, "Q8_0")
    assert str(corrupt_model_path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_requantizing_needs_consent(model_path: Path, tmp_path: Path) -> None:
    q8 = tmp_path / "q8.gguf"
    quantize(model_path, q8, "Q8_0")
    q4 = tmp_path / "q4.gguf"
    with pytest.raises(ModelError, match="allow_requantize"):
        quantize(q8, q4, "Q4_0")
    assert not q4.exists()
    assert _leftovers(tmp_path) == []
    result = quantize(q8, q4, "Q4_0", allow_requantize=True)
    assert result.dst_bytes < result.src_bytes
