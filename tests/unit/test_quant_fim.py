"""FIM families: token ids from GGUF metadata or token texts, and each family's prompt layout."""

from __future__ import annotations

import pytest

from codellama_lsp.context.packing import FILE_SEPARATOR, file_sections, path_line
from codellama_lsp.quant import fim
from codellama_lsp.quant.errors import ModelFormatError

QWEN_VOCAB = {
    "<|endoftext|>": 151643,
    "<|im_end|>": 151645,
    "<|fim_prefix|>": 151659,
    "<|fim_middle|>": 151660,
    "<|fim_suffix|>": 151661,
    "<|fim_pad|>": 151662,
    "<|repo_name|>": 151663,
    "<|file_sep|>": 151664,
}
STARCODER_VOCAB = {
    "<|endoftext|>": 0,
    "<fim_prefix>": 1,
    "<fim_middle>": 2,
    "<fim_suffix>": 3,
    "<fim_pad>": 4,
    "<repo_name>": 5,
    "<file_sep>": 6,
}
BAR = "\uff5c"
DEEPSEEK_VOCAB = {
    f"<{BAR}begin▁of▁sentence{BAR}>": 32013,
    f"<{BAR}end▁of▁sentence{BAR}>": 32014,
    f"<{BAR}fim▁hole{BAR}>": 32015,
    f"<{BAR}fim▁begin{BAR}>": 32016,
    f"<{BAR}fim▁end{BAR}>": 32017,
    "<|EOT|>": 32021,
}
GEMMA_VOCAB = {
    "<eos>": 1,
    "<bos>": 2,
    "<|fim_prefix|>": 67,
    "<|fim_middle|>": 68,
    "<|fim_suffix|>": 69,
    "<|file_separator|>": 70,
    "<end_of_turn>": 107,
}
LLAMA_VOCAB = {"▁<PRE>": 32007, "▁<SUF>": 32008, "▁<MID>": 32009, "▁<EOT>": 32010}


def resolve(vocab: dict[str, int], metadata: dict[str, str] | None = None, **kw: int | None):
    names = {v: k for k, v in vocab.items()}
    return fim.resolve(
        "/models/x.gguf",
        metadata or {},
        vocab.get,
        lambda t: names.get(t, f"tok{t}"),
        bos=kw.get("bos"),
        eos=kw.get("eos", 0) or 0,
    )


def test_new_metadata_keys_name_the_tokens_and_the_family() -> None:
    meta = {
        "tokenizer.ggml.fim_pre_token_id": "151659",
        "tokenizer.ggml.fim_suf_token_id": "151661",
        "tokenizer.ggml.fim_mid_token_id": "151660",
        "tokenizer.ggml.fim_pad_token_id": "151662",
        "tokenizer.ggml.fim_rep_token_id": "151663",
        "tokenizer.ggml.fim_sep_token_id": "151664",
    }
    ids = resolve(QWEN_VOCAB, meta, eos=151643)
    assert ids.family is fim.QWEN_CODER and ids.found_by == "metadata"
    assert (ids.prefix, ids.suffix, ids.middle) == (151659, 151661, 151660)
    assert (ids.repo, ids.file_sep, ids.bos) == (151663, 151664, None)
    assert ids.ends == {151643, 151645, 151662, 151663, 151664}
    assert ids.repo_level and ids.order("spm") == "psm" and ids.order("psm") == "psm"


def test_older_metadata_keys_still_count() -> None:
    meta = {
        "tokenizer.ggml.prefix_token_id": "32016",
        "tokenizer.ggml.suffix_token_id": "32015",
        "tokenizer.ggml.middle_token_id": "32017",
        "tokenizer.ggml.eot_token_id": "32021",
    }
    ids = resolve(DEEPSEEK_VOCAB, meta, bos=32013, eos=32014)
    assert ids.family is fim.DEEPSEEK_CODER
    assert (ids.prefix, ids.suffix, ids.middle, ids.bos) == (32016, 32015, 32017, 32013)
    assert ids.ends == {32014, 32021} and not ids.repo_level


def test_token_texts_when_the_metadata_has_none() -> None:
    star = resolve(STARCODER_VOCAB, eos=0)
    assert star.family is fim.STARCODER2 and star.found_by == "token texts"
    assert (star.prefix, star.suffix, star.middle, star.repo, star.file_sep) == (1, 3, 2, 5, 6)
    assert star.ends == {0, 4, 5, 6}
    llama = resolve(LLAMA_VOCAB, bos=1, eos=2)
    assert llama.family is fim.CODE_LLAMA and llama.order("auto") == "spm"
    assert fim.CODE_LLAMA.orders[0] == "spm" and llama.order("spm") == "spm"
    # Qwen2.5-Coder and CodeGemma spell the FIM tokens alike; only Qwen has <|file_sep|>.
    gemma = resolve(GEMMA_VOCAB, bos=2, eos=1)
    assert gemma.family is fim.CODEGEMMA and not gemma.repo_level
    assert gemma.ends == {1, 70, 107}
    assert resolve(QWEN_VOCAB, eos=151643).family is fim.QWEN_CODER


def test_metadata_tokens_of_no_known_family_get_psm() -> None:
    vocab = {"<fim-prefix>": 5, "<fim-suffix>": 6, "<fim-middle>": 7}
    meta = {
        "tokenizer.ggml.fim_pre_token_id": "5",
        "tokenizer.ggml.fim_suf_token_id": "6",
        "tokenizer.ggml.fim_mid_token_id": "7",
    }
    ids = resolve(vocab, meta, eos=0)
    assert ids.family.name == "gguf" and ids.order("spm") == "psm" and not ids.repo_level


def test_a_model_without_fim_tokens_is_refused_naming_the_file() -> None:
    with pytest.raises(ModelFormatError) as caught:
        resolve({"<|im_start|>": 3, "<|im_end|>": 4}, eos=4)
    message = str(caught.value)
    assert (
        "/models/x.gguf" in message
        and "fim_pre" in message
        and "prefix/suffix/middle_token_id" in message
    )
    assert "Instruct" in message and "<|fim_prefix|>" in message


QWEN = resolve(QWEN_VOCAB, eos=151643)
STAR = resolve(STARCODER_VOCAB, eos=0)
DEEPSEEK = resolve(DEEPSEEK_VOCAB, bos=32013, eos=32014)
LLAMA = resolve(LLAMA_VOCAB, bos=1, eos=2)
CONTEXT = fim.ContextTokens(repo=[900], files=[([901], [902, 903]), ([904], [905])], path=[906])


def test_psm_layouts_per_family() -> None:
    assert fim.assemble(QWEN, [10], [20], "psm") == [151659, 10, 151661, 20, 151660]
    assert fim.assemble(QWEN, [10], [20], "psm", CONTEXT) == [
        *(151663, 900),
        *(151664, 901, 902, 903),
        *(151664, 904, 905),
        *(151664, 906),
        *(151659, 10, 151661, 20, 151660),
    ]
    # StarCoder2: the current path follows <fim_prefix>.
    assert fim.assemble(STAR, [10], [20], "psm", CONTEXT) == [
        *(5, 900),
        *(6, 901, 902, 903),
        *(6, 904, 905),
        6,
        *(1, 906, 10, 3, 20, 2),
    ]
    assert fim.assemble(DEEPSEEK, [10], [20], "psm", fim.ContextTokens(preamble=[7, 8])) == [
        *(32013, 7, 8),
        *(32016, 10, 32015, 20, 32017),
    ]


def test_spm_puts_the_typed_text_last_and_the_preamble_first() -> None:
    assert fim.assemble(LLAMA, [10, 11], [20], "spm", fim.ContextTokens(preamble=[7])) == [
        *(1, 7),
        *(32007, 32008, 20, 32009, 10, 11),
    ]
    assert fim.assemble(LLAMA, [10, 11], [20], "psm") == [1, 32007, 10, 11, 32008, 20, 32009]
    with pytest.raises(ValueError):
        fim.assemble(LLAMA, [], [], "auto")


def test_fim_text_per_family() -> None:
    files = (("src/a.py", "def a():\n    pass\n"),)
    assert fim.fim_text(
        "", "x = ", "\n", "auto", family=fim.QWEN_CODER, files=files, repo="shop", path="b.py"
    ) == (
        "<|repo_name|>shop\n<|file_sep|>src/a.py\ndef a():\n    pass\n"
        "<|file_sep|>b.py\n<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>"
    )
    assert fim.fim_text(
        "", "x = ", "\n", "spm", family=fim.STARCODER2, files=files, repo="shop", path="b.py"
    ) == (
        "<repo_name>shop\n<file_sep>src/a.py\ndef a():\n    pass\n"
        "<file_sep><fim_prefix>b.py\nx = <fim_suffix>\n<fim_middle>"
    )
    shown = fim.fim_text("# ctx\n", "x", "y", "auto", shown=True, family=fim.DEEPSEEK_CODER)
    assert shown == f"<{BAR}begin▁of▁sentence{BAR}># ctx\n<{BAR}fim▁begin{BAR}>x" + (
        f"<{BAR}fim▁hole{BAR}>y<{BAR}fim▁end{BAR}>"
    )
    assert fim.fim_text("", "a", "b", "auto") == "<PRE> <SUF>b <MID> a"  # Code Llama: SPM
    assert fim.fim_text("", "a", "b", "psm", family=fim.CODEGEMMA) == (
        "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
    )


def test_file_sections_split_only_at_line_starts() -> None:
    context = (
        path_line(FILE_SEPARATOR, "a.py")
        + "x = '\x1c'\n"
        + path_line(FILE_SEPARATOR, "b 😀.py")
        + "y\n"
        + path_line(FILE_SEPARATOR, "cur.py")
    )
    assert file_sections(context) == (("a.py", "x = '\x1c'\n"), ("b 😀.py", "y\n"), ("cur.py", ""))
    assert file_sections("") == ()
    assert path_line("#", "a.py") == "# Path: a.py\n"


def test_remote_prompts_take_the_configured_family() -> None:
    from codellama_lsp.quant.backend import CompletionRequest
    from codellama_lsp.quant.errors import BackendUnavailable
    from codellama_lsp.quant.remote import RemoteConfig, RemoteEngine

    request = CompletionRequest(
        "x = ", "\n", files=(("util.py", "def u():\n    pass\n"),), repo="shop", path="app.py"
    )
    qwen = RemoteEngine(RemoteConfig("openai", "http://127.0.0.1:9", family="qwen2.5-coder"))
    assert qwen.describe().repo_level and qwen.describe().family == "qwen2.5-coder"
    assert qwen.prompt_text(request) == (
        "<|repo_name|>shop\n<|file_sep|>util.py\ndef u():\n    pass\n"
        "<|file_sep|>app.py\n<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>"
    )
    infill = RemoteEngine(
        RemoteConfig("llama-server-infill", "http://127.0.0.1:9", family="qwen2.5-coder")
    )
    path, body = infill._request_body(request)
    assert path == "/infill"
    assert body["input_extra"] == [{"filename": "util.py", "text": "def u():\n    pass\n"}]
    plain = RemoteEngine(RemoteConfig("openai", "http://127.0.0.1:9"))
    assert not plain.describe().repo_level
    assert (
        plain.prompt_text(CompletionRequest("a", "b", context="# c\n"))
        == "# c\n<PRE> <SUF>b <MID> a"
    )
    with pytest.raises(BackendUnavailable, match="unknown model family"):
        RemoteEngine(RemoteConfig("openai", "http://127.0.0.1:9", family="gpt"))
