"""Quantize a GGUF model with llama.cpp's own quantizer (through llama-cpp-python).

Using the library already loaded for inference means no separate llama.cpp
checkout or ``llama-quantize`` binary is needed to shrink an F32/F16 model.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError, ModelFormatError, ModelNotFoundError

GGUF_MAGIC = b"GGUF"

#: Type names accepted by ``quantize`` and the llama.cpp ``llama_ftype`` constant of each.
QUANT_TYPES: dict[str, str] = {
    "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "F16": "LLAMA_FTYPE_MOSTLY_F16",
}


@dataclass(frozen=True)
class QuantizeResult:
    src: Path
    dst: Path
    qtype: str
    src_bytes: int
    dst_bytes: int
    seconds: float

    @property
    def ratio(self) -> float:
        """Output size over input size."""
        return self.dst_bytes / self.src_bytes if self.src_bytes else 0.0


def normalize_type(qtype: str) -> str:
    """The canonical spelling of a type name; a clear error lists the valid ones."""
    name = qtype.strip().upper()
    if name not in QUANT_TYPES:
        raise ModelError(
            f"unknown quantization type {qtype!r}; valid types: {', '.join(QUANT_TYPES)}"
        )
    return name


def _check_source(src: Path) -> None:
    if not src.exists():
        raise ModelNotFoundError(f"model file not found: {src}")
    if not src.is_file():
        raise ModelNotFoundError(f"model path is not a file: {src}")
    with src.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelFormatError(
            f"{src}: not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})"
        )


def _same_file(src: Path, dst: Path) -> bool:
    if dst.exists():
        return os.path.samefile(src, dst)
    return src.resolve() == dst.resolve()


def quantize(
    src: Path,
    dst: Path,
    qtype: str,
    threads: int = 0,
    allow_requantize: bool = False,
) -> QuantizeResult:
    """Write ``src`` quantized to ``qtype`` at ``dst``.

    The output goes to a temporary file beside ``dst`` that is renamed at the
    end, so an interrupted or failed run never leaves a half-written model
    where a server would pick it up.  ``src`` is only read.
    """
    src = Path(src).expanduser()
    dst = Path(dst).expanduser()
    name = normalize_type(qtype)
    _check_source(src)
    if _same_file(src, dst):
        raise ModelError(f"{dst}: the output would overwrite the source model; choose another path")
    if not dst.parent.is_dir():
        raise ModelError(f"{dst}: output directory {dst.parent} does not exist")

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[name])
    params.nthread = max(0, threads)  # 0: llama.cpp uses every core
    params.allow_requantize = allow_requantize
    llama_cpp.llama_backend_init()

    partial = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    started = time.perf_counter()
    try:
        rc = llama_cpp.llama_model_quantize(
            os.fsencode(src), os.fsencode(partial), ctypes.byref(params)
        )
        if rc != 0:
            hint = (
                "" if allow_requantize else " (an already quantized source needs allow_requantize)"
            )
            raise ModelError(f"{src}: llama.cpp failed to quantize to {name} (returned {rc}){hint}")
        if not partial.is_file():
            raise ModelError(f"{src}: llama.cpp reported success but wrote no {name} output")
        partial.replace(dst)
    finally:
        partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return QuantizeResult(
        src=src,
        dst=dst,
        qtype=name,
        src_bytes=src.stat().st_size,
        dst_bytes=dst.stat().st_size,
        seconds=seconds,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codellama_lsp.quant.quantize",
        description="Quantize a GGUF model with llama.cpp.",
    )
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("type", help=f"one of {', '.join(QUANT_TYPES)}")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--allow-requantize", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = quantize(args.src, args.dst, args.type, args.threads, args.allow_requantize)
    except ModelError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(
        f"{result.dst}: {result.qtype}, {result.src_bytes / 2**20:.1f} MiB -> "
        f"{result.dst_bytes / 2**20:.1f} MiB ({result.ratio:.1%}) in {result.seconds:.1f} s\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
