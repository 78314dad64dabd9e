"""Generate FIM code-model-shaped GGUF files with random weights, for tests and benchmarks.

No weights are ever downloaded: each model is written here from a real
vocabulary shipped in the llama-cpp-python sdist (``vendor/llama.cpp/models``),
in one of four families (``FAMILIES``):

* ``codellama`` (the default, arch ``llama``): the Llama SentencePiece
  vocabulary plus the 16 tokens Code Llama appends (ids 32000-32015, the FIM
  tokens at 32007-32010), declared with the older ``tokenizer.ggml.prefix_token_id``
  keys; ``with_fim=False`` pads the vocabulary with unused tokens instead;
* ``qwen2.5-coder`` (arch ``qwen2``): the Qwen2 byte-level BPE vocabulary with
  its ``[PADn]`` fillers 151646-151664 replaced by Qwen2.5-Coder's special
  tokens (``<|fim_prefix|>`` 151659, ``<|fim_middle|>`` 151660,
  ``<|fim_suffix|>`` 151661, ...), declared with the newer
  ``tokenizer.ggml.fim_pre_token_id`` keys; ends with ``<|endoftext|>``;
* ``starcoder2`` (arch ``starcoder2``, LayerNorm): the StarCoder BPE vocabulary,
  whose ids 1-3 are ``<fim_prefix>``, ``<fim_middle>``, ``<fim_suffix>``; no FIM
  metadata at all (llama.cpp finds them by their texts); ends with ``<|endoftext|>``;
* ``deepseek-coder`` (arch ``llama``): the DeepSeek Coder BPE vocabulary
  (``fim▁begin`` 32016, ``fim▁hole`` 32015, ``fim▁end`` 32017, each written
  ``<|...|>`` with fullwidth bars, see ``FIM_TEXTS``), declared with the older
  keys; a BOS first; ends with its ``end▁of▁sentence`` token (32014).

The weights are random, except that the residual stream of each block is kept
close to the token embedding and the output matrix is biased so that the model
behaves as a fixed bigram table: after the FIM middle token it writes
`` return a + b`` (``SCRIPTED_COMPLETION``) then the family's end token; after
`` loop`` it writes `` loop`` forever (for max-token tests); after `` cycle`` it
goes round ``LONG_CYCLE`` (for cancellation tests); after `` as`` it writes
`` np`` then the end token (token healing tests); after any other token it
writes `` pass`` and then the end token.  That makes end-to-end tests exact
while llama.cpp still runs every layer for real.  ``FIM_TEXTS`` and ``FIM_IDS``
give each family's FIM and end tokens.

A test tool, not part of the installed package (see tests/support/__init__.py):
``python -m tests.support.synthetic [--family F] [--shape S]`` from the
repository root prints the path.
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

FAMILIES: tuple[str, ...] = ("codellama", "qwen2.5-coder", "starcoder2", "deepseek-coder")

#: Qwen2.5-Coder's special tokens, written over the Qwen2 vocabulary's ``[PADn]`` fillers.
QWEN_CODER_SPECIAL_TOKENS: dict[int, str] = {
    151646: "<|object_ref_start|>",
    151647: "<|object_ref_end|>",
    151648: "<|box_start|>",
    151649: "<|box_end|>",
    151650: "<|quad_start|>",
    151651: "<|quad_end|>",
    151652: "<|vision_start|>",
    151653: "<|vision_end|>",
    151654: "<|vision_pad|>",
    151655: "<|image_pad|>",
    151656: "<|video_pad|>",
    151657: "<tool_call>",
    151658: "</tool_call>",
    151659: "<|fim_prefix|>",
    151660: "<|fim_middle|>",
    151661: "<|fim_suffix|>",
    151662: "<|fim_pad|>",
    151663: "<|repo_name|>",
    151664: "<|file_sep|>",
}


@dataclass(frozen=True)
class FamilySpec:
    """How one family's GGUF is written: architecture, vocabulary, special tokens."""

    arch: str
    #: The vocabulary GGUF's path in the llama-cpp-python sdist.
    vocab_member: str
    n_vocab: int
    prefix_id: int
    suffix_id: int
    middle_id: int
    #: The token the scripted answers end with.
    end_id: int
    bos_id: int
    eos_id: int
    add_bos: bool
    #: How the FIM ids are declared: "old" (tokenizer.ggml.prefix_token_id ...),
    #: "new" (tokenizer.ggml.fim_pre_token_id ...) or "none" (found by text).
    fim_keys: str
    #: The word-start marker of the vocabulary's pieces ("▁" SentencePiece, "Ġ" GPT-2 BPE).
    space: str
    rope_freq_base: float = 1_000_000.0
    pad_id: int | None = None


FAMILY_SPECS: dict[str, FamilySpec] = {
    "codellama": FamilySpec(
        arch="llama",
        vocab_member=VOCAB_MEMBER,
        n_vocab=32016,
        prefix_id=PRE_ID,
        suffix_id=SUF_ID,
        middle_id=MID_ID,
        end_id=EOT_ID,
        bos_id=1,
        eos_id=2,
        add_bos=True,
        fim_keys="old",
        space="▁",
    ),
    "qwen2.5-coder": FamilySpec(
        arch="qwen2",
        vocab_member="vendor/llama.cpp/models/ggml-vocab-qwen2.gguf",
        n_vocab=151936,
        prefix_id=151659,
        suffix_id=151661,
        middle_id=151660,
        end_id=151643,
        bos_id=151643,
        eos_id=151643,
        add_bos=False,
        fim_keys="new",
        space="Ġ",
        pad_id=151643,
    ),
    "starcoder2": FamilySpec(
        arch="starcoder2",
        vocab_member="vendor/llama.cpp/models/ggml-vocab-starcoder.gguf",
        n_vocab=49152,
        prefix_id=1,
        suffix_id=3,
        middle_id=2,
        end_id=0,
        bos_id=0,
        eos_id=0,
        add_bos=False,
        fim_keys="none",
        space="Ġ",
    ),
    "deepseek-coder": FamilySpec(
        arch="llama",
        vocab_member="vendor/llama.cpp/models/ggml-vocab-deepseek-coder.gguf",
        n_vocab=32256,
        prefix_id=32016,
        suffix_id=32015,
        middle_id=32017,
        end_id=32014,
        bos_id=32013,
        eos_id=32014,
        add_bos=True,
        fim_keys="old",
        space="Ġ",
        rope_freq_base=100_000.0,
        pad_id=32014,
    ),
}

#: The fullwidth vertical bar of DeepSeek's special tokens.
_BAR = "\uff5c"
#: Per family, the vocabulary texts (entries of ``tokenizer.ggml.tokens``) of its
#: FIM prefix, suffix and middle tokens and of the token its answers end with.
FIM_TEXTS: dict[str, tuple[str, str, str, str]] = {
    "codellama": ("▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"),
    "qwen2.5-coder": ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|endoftext|>"),
    "starcoder2": ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<|endoftext|>"),
    "deepseek-coder": (
        f"<{_BAR}fim▁begin{_BAR}>",
        f"<{_BAR}fim▁hole{_BAR}>",
        f"<{_BAR}fim▁end{_BAR}>",
        f"<{_BAR}end▁of▁sentence{_BAR}>",
    ),
}
#: The same four tokens' ids: (prefix, suffix, middle, end).
FIM_IDS: dict[str, tuple[int, int, int, int]] = {
    family: (spec.prefix_id, spec.suffix_id, spec.middle_id, spec.end_id)
    for family, spec in FAMILY_SPECS.items()
}


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


def fetch_vocab(cache_dir: Path, member: str = VOCAB_MEMBER) -> Path:
    """A vocabulary GGUF (``member``, its path in the sdist) from the llama-cpp-python sdist.

    The sdist matching the installed llama-cpp-python is fetched from the
    package index with pip (which caches it) and only that file is kept, as
    ``<its name>-<version>.gguf`` in ``cache_dir``: once per member and version.
    """
    version = _llama_cpp_version()
    target = cache_dir / f"{Path(member).stem}-{version}.gguf"
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
            found = next((m for m in tar.getmembers() if m.name.endswith("/" + member)), None)
            if found is None:
                raise RuntimeError(f"{member} is not in {sdists[0].name}")
            source = tar.extractfile(found)
            if source is None:
                raise RuntimeError(f"{found.name} is not a file in the sdist")
            partial = target.with_suffix(".partial")
            with source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            partial.replace(target)
    return target


def fetch_llama_vocab(cache_dir: Path) -> Path:
    """The Llama SPM vocabulary GGUF (Code Llama's), taken from the llama-cpp-python sdist."""
    return fetch_vocab(cache_dir, VOCAB_MEMBER)


def fetch_family_vocab(family: str, cache_dir: Path) -> Path:
    """The vocabulary GGUF a family's models are written from."""
    return fetch_vocab(cache_dir, _spec(family).vocab_member)


def _spec(family: str) -> FamilySpec:
    try:
        return FAMILY_SPECS[family]
    except KeyError:
        raise ValueError(
            f"unknown model family {family!r} (one of {', '.join(FAMILIES)})"
        ) from None


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
    family: str = "codellama",
) -> Path:
    """Write a ``family``-shaped GGUF with scripted random weights to ``out``.

    ``vocab_path`` is that family's vocabulary (``fetch_family_vocab``).
    """
    import gguf

    if _spec(family) is not FAMILY_SPECS["codellama"]:
        if not with_fim:
            raise ValueError(f"with_fim=False is only for codellama, not {family}")
        return _write_bpe_model(out, vocab_path, shape, family, seed=seed, dtype=dtype)
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


def _read_bpe_vocab(vocab_path: Path) -> tuple[str, str, list[str], list[int], list[str]]:
    """tokenizer.ggml.model, pre, tokens, token_type and merges of a BPE vocabulary GGUF."""
    from gguf import GGUFReader

    reader = GGUFReader(vocab_path)

    def field(name: str) -> list[object]:
        contents = reader.fields[name].contents()
        return contents if isinstance(contents, list) else [contents]

    model = str(reader.fields["tokenizer.ggml.model"].contents())
    pre = str(reader.fields["tokenizer.ggml.pre"].contents())
    tokens = [str(t) for t in field("tokenizer.ggml.tokens")]
    types = [int(str(t)) for t in field("tokenizer.ggml.token_type")]
    merges = [str(m) for m in field("tokenizer.ggml.merges")]
    return model, pre, tokens, types, merges


def _write_bpe_model(
    out: Path,
    vocab_path: Path,
    shape: ModelShape,
    family: str,
    *,
    seed: int = 0,
    dtype: str = "f32",
) -> Path:
    """``write_model`` for the byte-level BPE families (all but codellama)."""
    import gguf

    spec = FAMILY_SPECS[family]
    model, pre, tokens, types, merges = _read_bpe_vocab(vocab_path)
    if len(tokens) != spec.n_vocab:
        raise RuntimeError(f"{vocab_path}: expected {spec.n_vocab} tokens, not {len(tokens)}")
    if family == "qwen2.5-coder":
        for i, text in QWEN_CODER_SPECIAL_TOKENS.items():
            tokens[i] = text
            types[i] = int(gguf.TokenType.CONTROL)
    for i, text in zip(FIM_IDS[family], FIM_TEXTS[family], strict=True):
        if tokens[i] != text:
            raise RuntimeError(f"{vocab_path}: token {i} is {tokens[i]!r}, expected {text!r}")
    n_vocab = len(tokens)
    index = {t: i for i, t in enumerate(tokens)}
    sp = spec.space

    def word(w: str) -> str:
        return w.replace("▁", sp)

    rng = np.random.default_rng(seed)
    e = shape.n_embd
    head_dim = e // shape.n_head
    kv_dim = head_dim * shape.n_head_kv
    np_dtype = np.float16 if dtype == "f16" else np.float32

    # As in write_model: a constant component (the "default successor"
    # direction) plus a random direction per token.  The random part is made
    # zero-mean per token so that LayerNorm's centring (starcoder2) leaves it,
    # and most of the constant component, in place.
    embd = rng.standard_normal((n_vocab, e), dtype=np.float32)
    embd[:, 1:] -= embd[:, 1:].mean(axis=1, keepdims=True)
    embd[:, 0] = 1.0
    directions = embd[:, 1:] / np.linalg.norm(embd[:, 1:], axis=1, keepdims=True)
    output = rng.standard_normal((n_vocab, e), dtype=np.float32) * 0.01

    def follow(after: str | int, then: str | int, strength: float = 1.5) -> None:
        a = after if isinstance(after, int) else index[word(after)]
        b = then if isinstance(then, int) else index[word(then)]
        output[b, 1:] += strength * directions[a]

    output[index[word("▁pass")], 0] = 6.0
    chain: list[str | int] = [spec.middle_id, "▁return", "▁a", "▁+", "▁b", spec.end_id]
    for a, b in itertools.pairwise(chain):
        follow(a, b)
    follow("▁pass", spec.end_id)
    # Each of these only where the vocabulary has all its words as single tokens.
    if all(word(w) in index for w in ("▁as", "▁np")):
        follow("▁as", "▁np")
        follow("▁np", spec.end_id)
    if word("▁loop") in index:
        follow("▁loop", "▁loop")
    if all(word(w) in index for w in LONG_CYCLE):
        for a, b in itertools.pairwise(LONG_CYCLE + LONG_CYCLE[:1]):
            follow(a, b)

    arch = spec.arch
    layer_norm = arch == "starcoder2"
    writer = gguf.GGUFWriter(str(out), arch)
    label = {4096: "7B-shaped", 128: "tiny"}.get(e, f"{e}-wide")
    writer.add_name(f"codellama-lsp synthetic {family} {label}")
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(e)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_freq_base(spec.rope_freq_base)
    if layer_norm:
        writer.add_layer_norm_eps(1e-5)
    else:
        writer.add_layer_norm_rms_eps(1e-6)
    if arch == "llama":
        writer.add_rope_dimension_count(head_dim)
        writer.add_vocab_size(n_vocab)
    writer.add_file_type(
        gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32
    )
    writer.add_tokenizer_model(model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(spec.bos_id)
    writer.add_eos_token_id(spec.eos_id)
    if spec.pad_id is not None:
        writer.add_pad_token_id(spec.pad_id)
    writer.add_add_bos_token(spec.add_bos)
    writer.add_add_eos_token(False)
    keys = gguf.Keys.Tokenizer
    if spec.fim_keys == "old":
        writer.add_uint32(keys.PREFIX_ID, spec.prefix_id)
        writer.add_uint32(keys.SUFFIX_ID, spec.suffix_id)
        writer.add_uint32(keys.MIDDLE_ID, spec.middle_id)
    elif spec.fim_keys == "new":
        for attr, literal, text in (
            ("FIM_PRE_ID", "tokenizer.ggml.fim_pre_token_id", "<|fim_prefix|>"),
            ("FIM_SUF_ID", "tokenizer.ggml.fim_suf_token_id", "<|fim_suffix|>"),
            ("FIM_MID_ID", "tokenizer.ggml.fim_mid_token_id", "<|fim_middle|>"),
            ("FIM_PAD_ID", "tokenizer.ggml.fim_pad_token_id", "<|fim_pad|>"),
            ("FIM_REP_ID", "tokenizer.ggml.fim_rep_token_id", "<|repo_name|>"),
            ("FIM_SEP_ID", "tokenizer.ggml.fim_sep_token_id", "<|file_sep|>"),
        ):
            writer.add_uint32(getattr(keys, attr, literal), index[text])

    def add(name: str, array: np.ndarray) -> None:
        # 1-D norm weights and biases stay F32 as llama.cpp expects.
        writer.add_tensor(name, array if array.ndim == 1 else array.astype(np_dtype))

    def weight(rows: int, cols: int, scale: float) -> np.ndarray:
        return rng.standard_normal((rows, cols), dtype=np.float32) * scale

    def bias(n: int, scale: float = 0.0) -> np.ndarray:
        return rng.standard_normal(n, dtype=np.float32) * scale

    def norm(name: str) -> None:
        add(name + ".weight", np.ones(e, dtype=np.float32))
        if layer_norm:
            add(name + ".bias", np.zeros(e, dtype=np.float32))

    add("token_embd.weight", embd)
    for layer in range(shape.n_layer):
        p = f"blk.{layer}."
        norm(p + "attn_norm")
        add(p + "attn_q.weight", weight(e, e, 1 / np.sqrt(e)))
        add(p + "attn_k.weight", weight(kv_dim, e, 1 / np.sqrt(e)))
        add(p + "attn_v.weight", weight(kv_dim, e, 1 / np.sqrt(e)))
        if arch != "llama":
            add(p + "attn_q.bias", bias(e, 0.02))
            add(p + "attn_k.bias", bias(kv_dim, 0.02))
            add(p + "attn_v.bias", bias(kv_dim, 0.02))
        # Small output projections keep the residual close to the embedding,
        # which is what makes the bigram script hold.
        add(p + "attn_output.weight", weight(e, e, 1e-4))
        if layer_norm:
            add(p + "attn_output.bias", bias(e))
        norm(p + "ffn_norm")
        if not layer_norm:
            add(p + "ffn_gate.weight", weight(shape.n_ff, e, 1 / np.sqrt(e)))
        add(p + "ffn_up.weight", weight(shape.n_ff, e, 1 / np.sqrt(e)))
        if layer_norm:
            add(p + "ffn_up.bias", bias(shape.n_ff))
        add(p + "ffn_down.weight", weight(e, shape.n_ff, 1e-4))
        if layer_norm:
            add(p + "ffn_down.bias", bias(e))
    norm("output_norm")
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


def model_file(
    name: str = "tiny",
    cache_dir: Path | None = None,
    *,
    with_fim: bool = True,
    family: str = "codellama",
) -> Path:
    """Where ``ensure_model`` keeps that model (whether or not it is written yet)."""
    _spec(family)
    if not with_fim and family != "codellama":
        raise ValueError(f"with_fim=False is only for codellama, not {family}")
    cache_dir = cache_dir or default_cache_dir()
    suffix = "" if with_fim else "-nofim"
    return cache_dir / (
        f"{family}-synthetic-{name}{suffix}-s{SCRIPT_VERSION}-{_llama_cpp_version()}.gguf"
    )


def ensure_model(
    name: str = "tiny",
    cache_dir: Path | None = None,
    *,
    with_fim: bool = True,
    family: str = "codellama",
) -> Path:
    """Path of a generated model of that shape and family, writing it on first use."""
    cache_dir = cache_dir or default_cache_dir()
    path = model_file(name, cache_dir, with_fim=with_fim, family=family)
    if path.exists():
        return path
    vocab = fetch_family_vocab(family, cache_dir)
    tmp = path.with_suffix(".partial")
    write_model(
        tmp,
        vocab,
        SHAPES[name],
        with_fim=with_fim,
        dtype="f16" if name != "tiny" else "f32",
        family=family,
    )
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.synthetic",
        description="Write a FIM code-model-shaped GGUF with scripted random weights.",
    )
    parser.add_argument("--family", choices=FAMILIES, default="codellama")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument(
        "--no-fim", action="store_true", help="omit the FIM tokens (codellama only)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.no_fim and args.family != "codellama":
        parser.error("--no-fim is only for --family codellama")
    path = ensure_model(args.shape, args.cache_dir, with_fim=not args.no_fim, family=args.family)
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
