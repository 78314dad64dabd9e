"""Generate Code Llama-shaped GGUF files with random weights, for tests and benchmarks.

No weights are ever downloaded: the model is written here from the real Llama
SentencePiece vocabulary (shipped in the llama-cpp-python sdist) plus the 16
tokens Code Llama appends (ids 32000-32015, the FIM tokens at 32007-32010).

The weights are random, except that the residual stream of each block is kept
close to the token embedding and the output matrix is biased so that the model
behaves as a fixed bigram table: after ``▁<MID>`` it writes `` return a + b``
then ``▁<EOT>``; after ``▁loop`` it writes ``▁loop`` forever (for max-token
tests); after ``▁cycle`` it goes round ``LONG_CYCLE`` (for cancellation tests);
after ``▁as`` it writes ``▁np`` then ``▁<EOT>`` (token healing tests); after
any other token it writes ``▁pass`` and then ``▁<EOT>``.  That makes
end-to-end tests exact while llama.cpp still runs every layer for real.

A test tool, not part of the installed package (see tests/support/__init__.py):
``python -m tests.support.synthetic`` from the repository root prints the path.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

# llama_cpp before numpy (gguf imports numpy too): on a CUDA machine (numpy 2.5,
# system libstdc++) loading a model segfaulted when numpy's libraries had been
# loaded first, and whoever imports this module loads models next.
import llama_cpp  # noqa: F401
import numpy as np

CODE_LLAMA_EXTRA_TOKENS: tuple[str, ...] = (
    "▁<SU",
    "▁<SUF",
    "▁<PRE",
    "▁<M",
    "▁<MID",
    "▁<E",
    "▁<EOT",
    "▁<PRE>",
    "▁<SUF>",
    "▁<MID>",
    "▁<EOT>",
    "▁<EOT><EOT>",
    "▁<EOT><EOT><EOT>",
    "▁<EOT><EOT><EOT><EOT>",
    "▁<EOT><EOT><EOT><EOT><EOT>",
    "▁<EOT><EOT><EOT><EOT><EOT><EOT>",
)
PRE_ID, SUF_ID, MID_ID, EOT_ID = 32007, 32008, 32009, 32010
VOCAB_MEMBER = "vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf"
SCRIPTED_COMPLETION = " return a + b"
#: After ``▁cycle`` the model writes these words round and round: a generation
#: that runs to max tokens without tripping the short-repetition stop rules.
LONG_CYCLE: tuple[str, ...] = (
    "▁cycle",
    "▁through",
    "▁every",
    "▁item",
    "▁of",
    "▁the",
    "▁whole",
    "▁list",
    "▁again",
)
#: pip fetching the llama-cpp-python sdist (~75 MB; pip caches it for the next time).
PIP_DOWNLOAD_TIMEOUT_S = 900
#: Bumped when the scripted behaviour changes, so cached test models are rewritten.
SCRIPT_VERSION = 5


@dataclass(frozen=True)
class ModelShape:
    n_embd: int = 128
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 4
    n_ff: int = 256
    context_length: int = 16384


SHAPES = {
    "tiny": ModelShape(),
    # The attention/FFN shape of Code Llama 7B, for latency benchmarks.
    "7b": ModelShape(n_embd=4096, n_layer=32, n_head=32, n_head_kv=32, n_ff=11008),
}


def _llama_cpp_version() -> str:
    from importlib.metadata import version

    return version("llama-cpp-python")


def fetch_llama_vocab(cache_dir: Path) -> Path:
    """The Llama SPM vocabulary GGUF, taken from the llama-cpp-python sdist.

    The sdist matching the installed llama-cpp-python is fetched once from the
    package index with pip (which caches it) and only the vocabulary is kept.
    """
    version = _llama_cpp_version()
    target = cache_dir / f"ggml-vocab-llama-spm-{version}.gguf"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                tmp,
                f"llama-cpp-python=={version}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=PIP_DOWNLOAD_TIMEOUT_S,
        )
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if not sdists:
            raise RuntimeError("pip download did not produce the llama-cpp-python sdist")
        with tarfile.open(sdists[0]) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(VOCAB_MEMBER))
            source = tar.extractfile(member)
            if source is None:
                raise RuntimeError(f"{member.name} is not a file in the sdist")
            partial = target.with_suffix(".partial")
            with source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            partial.replace(target)
    return target


def _read_vocab(vocab_path: Path) -> tuple[list[str], list[float], list[int]]:
    from gguf import GGUFReader

    reader = GGUFReader(vocab_path)

    def field(name: str) -> list[object]:
        f = reader.fields[name]
        return [f.contents(i) for i in range(len(f.data))]

    tokens = [str(t) for t in field("tokenizer.ggml.tokens")]
    scores = [float(str(s)) for s in field("tokenizer.ggml.scores")]
    types = [int(str(t)) for t in field("tokenizer.ggml.token_type")]
    return tokens, scores, types


def write_model(
    out: Path,
    vocab_path: Path,
    shape: ModelShape = SHAPES["tiny"],
    *,
    seed: int = 0,
    with_fim: bool = True,
    dtype: str = "f32",
) -> Path:
    """Write a Code Llama-shaped GGUF with scripted random weights to ``out``."""
    import gguf

    tokens, scores, types = _read_vocab(vocab_path)
    if len(tokens) != 32000:
        raise RuntimeError(f"{vocab_path}: expected the 32000-token Llama vocabulary")
    tokens += list(CODE_LLAMA_EXTRA_TOKENS)
    scores += [0.0] * len(CODE_LLAMA_EXTRA_TOKENS)
    types += [
        int(gguf.TokenType.CONTROL if PRE_ID <= i <= EOT_ID else gguf.TokenType.USER_DEFINED)
        for i in range(32000, 32016)
    ]
    if not with_fim:
        # A plain Llama vocabulary padded to Code Llama's size: no FIM pieces.
        for i in range(32000, 32016):
            tokens[i] = f"<unused{i - 32000}>"
            types[i] = int(gguf.TokenType.UNUSED)
    n_vocab = len(tokens)
    index = {t: i for i, t in enumerate(tokens)}

    rng = np.random.default_rng(seed)
    e = shape.n_embd
    head_dim = e // shape.n_head
    kv_dim = head_dim * shape.n_head_kv
    np_dtype = np.float16 if dtype == "f16" else np.float32

    # Embeddings: one constant component (the "default successor" direction)
    # plus a random direction per token.
    embd = rng.standard_normal((n_vocab, e), dtype=np.float32)
    embd[:, 0] = 1.0
    directions = embd[:, 1:] / np.linalg.norm(embd[:, 1:], axis=1, keepdims=True)
    output = rng.standard_normal((n_vocab, e), dtype=np.float32) * 0.01

    def follow(after: str | int, then: str | int, strength: float = 1.5) -> None:
        a = after if isinstance(after, int) else index[after]
        b = then if isinstance(then, int) else index[then]
        output[b, 1:] += strength * directions[a]

    output[index["▁pass"], 0] = 6.0
    if with_fim:
        chain: list[str | int] = [MID_ID, "▁return", "▁a", "▁+", "▁b", EOT_ID]
        for a, b in itertools.pairwise(chain):
            follow(a, b)
        follow("▁pass", EOT_ID)
        # Token healing: "import numpy as n" backed off to "▁as" goes on with "▁np".
        follow("▁as", "▁np")
        follow("▁np", EOT_ID)
    follow("▁loop", "▁loop")
    for a, b in itertools.pairwise(LONG_CYCLE + LONG_CYCLE[:1]):
        follow(a, b)

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("codellama-lsp synthetic " + ("7B-shaped" if e == 4096 else "tiny"))
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(e)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(
        gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32
    )
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if with_fim:
        writer.add_uint32(gguf.Keys.Tokenizer.PREFIX_ID, PRE_ID)
        writer.add_uint32(gguf.Keys.Tokenizer.SUFFIX_ID, SUF_ID)
        writer.add_uint32(gguf.Keys.Tokenizer.MIDDLE_ID, MID_ID)
        writer.add_uint32(gguf.Keys.Tokenizer.EOT_ID, EOT_ID)

    def add(name: str, array: np.ndarray, *, small: bool = False) -> None:
        # 1-D norm weights stay F32 as llama.cpp expects.
        data = array if array.ndim == 1 else array.astype(np_dtype)
        writer.add_tensor(name, data if not small else data.astype(np.float32))

    def weight(rows: int, cols: int, scale: float) -> np.ndarray:
        return rng.standard_normal((rows, cols), dtype=np.float32) * scale

    add("token_embd.weight", embd)
    for layer in range(shape.n_layer):
        p = f"blk.{layer}."
        add(p + "attn_norm.weight", np.ones(e, dtype=np.float32))
        add(p + "attn_q.weight", weight(e, e, 1 / np.sqrt(e)))
        add(p + "attn_k.weight", weight(kv_dim, e, 1 / np.sqrt(e)))
        add(p + "attn_v.weight", weight(kv_dim, e, 1 / np.sqrt(e)))
        # Small output projections keep the residual close to the embedding,
        # which is what makes the bigram script hold.
        add(p + "attn_output.weight", weight(e, e, 1e-4))
        add(p + "ffn_norm.weight", np.ones(e, dtype=np.float32))
        add(p + "ffn_gate.weight", weight(shape.n_ff, e, 1 / np.sqrt(e)))
        add(p + "ffn_up.weight", weight(shape.n_ff, e, 1 / np.sqrt(e)))
        add(p + "ffn_down.weight", weight(e, shape.n_ff, 1e-4))
    add("output_norm.weight", np.ones(e, dtype=np.float32))
    add("output.weight", output)

    out.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("codellama-lsp")) / "synthetic"


def model_file(name: str = "tiny", cache_dir: Path | None = None, *, with_fim: bool = True) -> Path:
    """Where ``ensure_model`` keeps that model (whether or not it is written yet)."""
    cache_dir = cache_dir or default_cache_dir()
    suffix = "" if with_fim else "-nofim"
    return cache_dir / (
        f"codellama-synthetic-{name}{suffix}-s{SCRIPT_VERSION}-{_llama_cpp_version()}.gguf"
    )


def ensure_model(
    name: str = "tiny", cache_dir: Path | None = None, *, with_fim: bool = True
) -> Path:
    """Path of a generated model, writing it on first use."""
    cache_dir = cache_dir or default_cache_dir()
    path = model_file(name, cache_dir, with_fim=with_fim)
    if path.exists():
        return path
    vocab = fetch_llama_vocab(cache_dir)
    tmp = path.with_suffix(".partial")
    write_model(
        tmp, vocab, SHAPES[name], with_fim=with_fim, dtype="f16" if name != "tiny" else "f32"
    )
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.synthetic",
        description="Write a Code Llama-shaped GGUF with random weights.",
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--no-fim", action="store_true", help="omit the FIM tokens")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    path = ensure_model(args.shape, args.cache_dir, with_fim=not args.no_fim)
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
