"""Code Llama fill-in-the-middle prompts, assembled from token ids.

llama-cpp-python's own ``suffix=`` infill path inserts token 0 where Code Llama
expects its FIM tokens, so the prompt is built here as a token list.  Prefix
text is tokenized like the start of a sentence (SentencePiece's leading "▁"),
the suffix without it, as Code Llama's reference infilling code does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import ModelFormatError

FIM_ORDERS = ("spm", "psm")


def fim_text(context: str, prefix: str, suffix: str, order: str, *, shown: bool = False) -> str:
    """Code Llama's fill-in-the-middle prompt as text, repository context first.

    The wire form (default) is what a server that tokenizes text gets: Code
    Llama's ``▁<PRE>``/``▁<SUF>``/``▁<MID>`` are vocabulary pieces, so `` <SUF>``
    becomes the control token (the form Code Llama's tokenizer and Ollama's
    template use).  ``shown`` is what the engine's own token list renders to
    (:func:`assemble`, BOS and SentencePiece's leading space before the prefix),
    for ``codellama-lsp prompt`` when no model is at hand to tokenize.
    """
    if order not in FIM_ORDERS:
        raise ValueError(f"unknown FIM order {order!r}; expected one of {FIM_ORDERS}")
    if shown:
        head = "<s>" + (" " + context if context else "") + "▁<PRE>"
        pre = " " + prefix if prefix else ""
        suf, mid = "▁<SUF>", "▁<MID>"
    else:
        head, pre, suf, mid = f"{context}<PRE>", f" {prefix}", " <SUF>", " <MID>"
    if order == "psm":
        return f"{head}{pre}{suf}{suffix}{mid}"
    return f"{head}{suf}{suffix}{mid}{pre}"


@dataclass(frozen=True)
class FimTokens:
    bos: int
    eos: int
    prefix: int
    suffix: int
    middle: int
    eot: int


def assemble(
    fim: FimTokens,
    prefix_ids: list[int],
    suffix_ids: list[int],
    order: str,
    context_ids: Sequence[int] = (),
) -> list[int]:
    """The prompt token list.

    PSM: ``<s> context ▁<PRE> prefix ▁<SUF> suffix ▁<MID>``.
    SPM: ``<s> context ▁<PRE> ▁<SUF> suffix ▁<MID> prefix`` -- the text being typed is
    last, so a keystroke only appends tokens and the KV cache keeps the rest.

    Repository context goes first, before the FIM tokens (where llama.cpp's own
    ``/infill`` puts its ``input_extra``): it is chosen per file and changes
    rarely, so moving the cursor re-evaluates only the suffix and prefix.
    """
    if order == "psm":
        return [fim.bos, *context_ids, fim.prefix, *prefix_ids, fim.suffix, *suffix_ids, fim.middle]
    if order == "spm":
        return [fim.bos, *context_ids, fim.prefix, fim.suffix, *suffix_ids, fim.middle, *prefix_ids]
    raise ValueError(f"unknown FIM order {order!r}; expected one of {FIM_ORDERS}")


def _line_cuts(text: str) -> list[int]:
    cuts = [0]
    cuts.extend(i + 1 for i, ch in enumerate(text) if ch == "\n")
    return cuts


def fit_prefix(text: str, budget: int, count: Callable[[str], int]) -> str:
    """Drop whole leading lines of ``text`` until it takes at most ``budget`` tokens.

    The line holding the cursor (the last one) is kept whole even if it alone is
    over budget: a half line would mislead the model more than a long prompt.
    """
    if count(text) <= budget:
        return text
    cuts = _line_cuts(text)
    lo, hi = 0, len(cuts) - 1  # index of the first kept line
    while lo < hi:
        mid = (lo + hi) // 2
        if count(text[cuts[mid] :]) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return text[cuts[lo] :]


def fit_suffix(text: str, budget: int, count: Callable[[str], int]) -> str:
    """Drop whole trailing lines of ``text`` until it takes at most ``budget`` tokens."""
    if count(text) <= budget:
        return text
    ends = [c for c in _line_cuts(text) if c > 0]  # cut just after each newline
    lo, hi = 0, len(ends)  # number of lines kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[: ends[mid - 1]]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[: ends[lo - 1]] if lo else ""


def require_fim(tokens: dict[str, int], path: str) -> None:
    """Fail clearly when a model's vocabulary lacks the FIM tokens."""
    missing = [name for name, value in tokens.items() if value < 0]
    if missing:
        raise ModelFormatError(
            f"{path}: the vocabulary has no fill-in-the-middle tokens "
            f"({', '.join(missing)} missing); use a Code Llama base or Python model, "
            "not an Instruct or plain Llama model"
        )
