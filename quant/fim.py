"""Fill-in-the-middle prompts for each FIM model family, assembled from token ids.

llama-cpp-python's own ``suffix=`` infill path inserts token 0 where Code Llama
expects its FIM tokens, so prompts are built here as token lists.  Which tokens
a model has is read from its GGUF (:func:`resolve`); how the prompt is laid out
is the model's family's trained format (:data:`FAMILIES`): Code Llama takes
repository context as a commented preamble and both PSM and SPM; Qwen2.5-Coder
and StarCoder2 were trained with repository-level prompts (a repository name,
then each file after a file-separator token with its path).  Code Llama's
prefix is tokenized like the start of a sentence (SentencePiece's leading "▁"),
its suffix without it, as its reference infilling code does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .backend import CompletionRequest
from .errors import ModelFormatError

FIM_ORDERS = ("spm", "psm")
#: ``completion.fimOrder`` values: ``auto`` is the family's preferred order.
FIM_ORDER_CHOICES = ("auto", "spm", "psm")


@dataclass(frozen=True)
class FimFamily:
    """A family's FIM token texts and the prompt format it was trained with."""

    name: str
    title: str
    prefix: str
    suffix: str
    middle: str
    #: Tokens besides EOS that end an infill (the family's end-of-middle, file and
    #: repository separators: the model moving on to another file).
    ends: tuple[str, ...]
    #: Orders the family was trained with; the first is what ``auto`` picks.
    orders: tuple[str, ...] = ("psm",)
    #: Repository-level prompts: the repository-name and file-separator tokens.
    repo: str = ""
    file_sep: str = ""
    #: StarCoder2 writes the current file's path after the prefix token.
    path_after_prefix: bool = False
    #: The BOS text its tokenizer starts a prompt with ("" none), for the shown form.
    bos: str = ""

    @property
    def repo_level(self) -> bool:
        return bool(self.file_sep)

    @property
    def fim_texts(self) -> tuple[str, str, str]:
        return (self.prefix, self.suffix, self.middle)

    def order(self, wanted: str) -> str:
        """``wanted`` when the family was trained with it, else (and for ``auto``) its own."""
        return wanted if wanted in self.orders else self.orders[0]


CODE_LLAMA = FimFamily(
    "codellama", "Code Llama", "▁<PRE>", "▁<SUF>", "▁<MID>", ("▁<EOT>",), ("spm", "psm")
)
QWEN_CODER = FimFamily(
    "qwen2.5-coder",
    "Qwen2.5-Coder",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    ("<|endoftext|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|im_end|>"),
    repo="<|repo_name|>",
    file_sep="<|file_sep|>",
)
STARCODER2 = FimFamily(
    "starcoder2",
    "StarCoder2",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    ("<|endoftext|>", "<fim_pad>", "<repo_name>", "<file_sep>"),
    repo="<repo_name>",
    file_sep="<file_sep>",
    path_after_prefix=True,
)
#: DeepSeek-Coder's special tokens are spelled with a full-width bar (U+FF5C).
_BAR = "\uff5c"
DEEPSEEK_CODER = FimFamily(
    "deepseek-coder",
    "DeepSeek-Coder",
    f"<{_BAR}fim▁begin{_BAR}>",
    f"<{_BAR}fim▁hole{_BAR}>",
    f"<{_BAR}fim▁end{_BAR}>",
    ("<|EOT|>", f"<{_BAR}end▁of▁sentence{_BAR}>"),
    bos=f"<{_BAR}begin▁of▁sentence{_BAR}>",
)
CODEGEMMA = FimFamily(
    "codegemma",
    "CodeGemma",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    ("<|file_separator|>", "<end_of_turn>", "<eos>"),
)
#: Known families, in the order a vocabulary is matched against them (Qwen2.5-Coder
#: before CodeGemma: both spell the FIM tokens alike, only Qwen has ``<|file_sep|>``).
FAMILIES: dict[str, FimFamily] = {
    f.name: f for f in (CODE_LLAMA, QWEN_CODER, STARCODER2, DEEPSEEK_CODER, CODEGEMMA)
}


def order_for(family: str, wanted: str) -> str:
    """The order a ``family`` model's prompts take for ``completion.fimOrder`` ``wanted``
    (a family not known here, named by its GGUF's FIM tokens only, takes PSM)."""
    known = FAMILIES.get(family)
    return known.order(wanted) if known is not None else "psm"


#: GGUF metadata keys holding FIM token ids: the current keys first, then the older ones.
METADATA_KEYS: dict[str, tuple[str, ...]] = {
    "prefix": ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"),
    "suffix": ("tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"),
    "middle": ("tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"),
    "pad": ("tokenizer.ggml.fim_pad_token_id",),
    "repo": ("tokenizer.ggml.fim_rep_token_id",),
    "file_sep": ("tokenizer.ggml.fim_sep_token_id",),
    "eot": ("tokenizer.ggml.eot_token_id",),
}


@dataclass(frozen=True)
class FimTokens:
    """One model's FIM token ids and the family whose format its prompts take."""

    bos: int | None
    eos: int
    prefix: int
    suffix: int
    middle: int
    family: FimFamily = CODE_LLAMA
    #: Every token that ends an infill (EOS included).
    ends: frozenset[int] = frozenset()
    repo: int | None = None
    file_sep: int | None = None
    #: Where the ids came from ("metadata" or "token texts"), for the load log.
    found_by: str = "metadata"

    @property
    def controls(self) -> frozenset[int]:
        """Tokens that never come from source text (user text spelling one is re-spelled)."""
        found = {self.prefix, self.suffix, self.middle, *self.ends}
        return frozenset(found | {t for t in (self.repo, self.file_sep) if t is not None})

    @property
    def repo_level(self) -> bool:
        return self.file_sep is not None and self.family.repo_level

    def order(self, wanted: str) -> str:
        return self.family.order(wanted)


def metadata_ids(metadata: Mapping[str, str]) -> dict[str, int]:
    """The FIM token ids a GGUF's metadata declares (first key found per role)."""
    found: dict[str, int] = {}
    for role, keys in METADATA_KEYS.items():
        for key in keys:
            value = metadata.get(key)
            if value is None:
                continue
            try:
                token = int(value)
            except ValueError:
                continue
            if token >= 0:
                found[role] = token
                break
    return found


def _describe_missing(path: str) -> str:
    texts = ", ".join(f"{f.title} {f.prefix}" for f in FAMILIES.values())
    return (
        f"{path}: this model has no fill-in-the-middle tokens: its GGUF metadata has no "
        "tokenizer.ggml.fim_pre/fim_suf/fim_mid_token_id (nor the older "
        "prefix/suffix/middle_token_id), and its vocabulary has none of the FIM tokens of "
        f"the known families ({texts}). Instruct and chat models are not trained for "
        "infilling: use a base model of a FIM family (codellama-lsp models list)"
    )


def _family_of(
    has_fim: Callable[[FimFamily], bool], find: Callable[[str], int | None]
) -> FimFamily | None:
    """The first known family with these FIM tokens whose file separator (if it has
    one) the vocabulary holds: Qwen2.5-Coder and CodeGemma spell FIM tokens alike."""
    for family in FAMILIES.values():
        if has_fim(family) and (not family.file_sep or find(family.file_sep) is not None):
            return family
    return None


def resolve(
    path: str,
    metadata: Mapping[str, str],
    find: Callable[[str], int | None],
    text_of: Callable[[int], str],
    *,
    bos: int | None,
    eos: int,
) -> FimTokens:
    """A model's FIM tokens: ids from the GGUF metadata, else the family's token texts.

    ``find`` maps a token text to its id when the vocabulary has it as one token;
    ``text_of`` an id to its text.  The family is the one whose texts the tokens
    have; a model whose metadata names FIM tokens of no known family gets PSM and
    a commented preamble.  No FIM tokens at all: :class:`ModelFormatError`.
    """
    declared = metadata_ids(metadata)
    roles = ("prefix", "suffix", "middle")
    found_by = "metadata"
    if all(role in declared for role in roles):
        texts = tuple(text_of(declared[r]) for r in roles)
        family = _family_of(lambda f: f.fim_texts == texts, find)
        if family is None:
            family = FimFamily("gguf", "FIM tokens of the GGUF", texts[0], texts[1], texts[2], ())
    else:
        found_by = "token texts"
        family = _family_of(lambda f: all(find(t) is not None for t in f.fim_texts), find)
        if family is None:
            raise ModelFormatError(_describe_missing(path))
        ids = {r: find(t) for r, t in zip(roles, family.fim_texts, strict=True)}
        declared.update({r: i for r, i in ids.items() if i is not None})
    ends = {eos}
    ends.update(declared[r] for r in ("eot", "pad", "repo", "file_sep") if r in declared)
    ends.update(t for t in (find(text) for text in family.ends) if t is not None)
    repo = declared.get("repo", find(family.repo) if family.repo else None)
    file_sep = declared.get("file_sep", find(family.file_sep) if family.file_sep else None)
    return FimTokens(
        bos=bos,
        eos=eos,
        prefix=declared["prefix"],
        suffix=declared["suffix"],
        middle=declared["middle"],
        family=family,
        ends=frozenset(ends),
        repo=repo,
        file_sep=file_sep,
        found_by=found_by,
    )


@dataclass(frozen=True)
class ContextTokens:
    """Repository context as tokens: a preamble, or files in a repository-level prompt."""

    #: Commented preamble (Code Llama, DeepSeek-Coder, CodeGemma): written as is.
    preamble: Sequence[int] = ()
    #: Repository-level prompts: the repository's name ...
    repo: Sequence[int] = ()
    #: ... then each file: (its path and a newline, its text).
    files: Sequence[tuple[Sequence[int], Sequence[int]]] = ()
    #: The current file's path and a newline (repository-level prompts).
    path: Sequence[int] = ()

    def __len__(self) -> int:
        files = sum(1 + len(p) + len(b) for p, b in self.files)
        repo = 1 + len(self.repo) if self.repo else 0
        return len(self.preamble) + repo + files + (1 + len(self.path) if self.path else 0)


EMPTY_CONTEXT = ContextTokens()


def assemble(
    fim: FimTokens,
    prefix_ids: list[int],
    suffix_ids: list[int],
    order: str,
    context: ContextTokens = EMPTY_CONTEXT,
) -> list[int]:
    """The prompt token list; repository context first, the text being typed as late as
    the family allows.

    Code Llama SPM: ``<s> context ▁<PRE> ▁<SUF> suffix ▁<MID> prefix`` -- the text
    being typed is last, so a keystroke only appends tokens and the KV cache keeps
    the rest.  PSM: ``context PRE prefix SUF suffix MID``.  Repository-level
    (Qwen2.5-Coder): ``<|repo_name|>name <|file_sep|>path file ... <|file_sep|>path``
    then the FIM part; StarCoder2 writes the current path after ``<fim_prefix>``.
    Context goes first (where llama.cpp's ``/infill`` puts ``input_extra``): it is
    chosen per file and changes rarely, so a cursor move re-evaluates only the FIM part.
    """
    if order not in FIM_ORDERS:
        raise ValueError(f"unknown FIM order {order!r}; expected one of {FIM_ORDERS}")
    tokens = [] if fim.bos is None else [fim.bos]
    tokens.extend(context.preamble)
    path_after: Sequence[int] = ()
    if fim.file_sep is not None and (context.files or context.path):
        if fim.repo is not None and context.repo:
            tokens += [fim.repo, *context.repo]
        for path_ids, body_ids in context.files:
            tokens += [fim.file_sep, *path_ids, *body_ids]
        if fim.family.path_after_prefix:
            tokens.append(fim.file_sep)
            path_after = context.path
        else:
            tokens += [fim.file_sep, *context.path]
    if order == "psm":
        return [
            *tokens,
            fim.prefix,
            *path_after,
            *prefix_ids,
            fim.suffix,
            *suffix_ids,
            fim.middle,
        ]
    return [*tokens, fim.prefix, *path_after, fim.suffix, *suffix_ids, fim.middle, *prefix_ids]


def fim_text(
    context: str,
    prefix: str,
    suffix: str,
    order: str,
    *,
    shown: bool = False,
    family: FimFamily = CODE_LLAMA,
    files: Sequence[tuple[str, str]] = (),
    repo: str = "",
    path: str = "",
) -> str:
    """A family's fill-in-the-middle prompt as text, repository context first.

    The wire form (default) is what a server that tokenizes text gets.  Code
    Llama's ``▁<PRE>``/``▁<SUF>``/``▁<MID>`` are vocabulary pieces, so `` <SUF>``
    becomes the control token (the form Code Llama's tokenizer and Ollama's
    template use); the other families' FIM tokens are special tokens written as
    their text.  ``shown`` is what the engine's own token list renders to
    (:func:`assemble`), for ``codellama-lsp prompt`` when no model is at hand.
    ``files`` (path, text) and ``repo`` are repository-level context, written only
    for families trained with it (Qwen2.5-Coder, StarCoder2).
    """
    if order not in FIM_ORDER_CHOICES:
        raise ValueError(f"unknown FIM order {order!r}; expected one of {FIM_ORDER_CHOICES}")
    order = family.order(order)
    if family is CODE_LLAMA:
        if shown:
            head = "<s>" + (" " + context if context else "") + "▁<PRE>"
            pre = " " + prefix if prefix else ""
            suf, mid = "▁<SUF>", "▁<MID>"
        else:
            head, pre, suf, mid = f"{context}<PRE>", f" {prefix}", " <SUF>", " <MID>"
        if order == "psm":
            return f"{head}{pre}{suf}{suffix}{mid}"
        return f"{head}{suf}{suffix}{mid}{pre}"
    head = (family.bos if shown else "") + context
    after = ""
    if family.repo_level and (files or path):
        if repo:
            head += f"{family.repo}{repo}\n"
        head += "".join(f"{family.file_sep}{p}\n{body}" for p, body in files)
        if family.path_after_prefix:
            head += family.file_sep
            after = f"{path}\n" if path else ""
        else:
            head += f"{family.file_sep}{path}\n" if path else family.file_sep
    if order == "psm":
        return f"{head}{family.prefix}{after}{prefix}{family.suffix}{suffix}{family.middle}"
    return f"{head}{family.prefix}{after}{family.suffix}{suffix}{family.middle}{prefix}"


def request_text(
    request: CompletionRequest, family: FimFamily = CODE_LLAMA, *, shown: bool = False
) -> str:
    """``request``'s prompt as text in ``family``'s format (:func:`fim_text`), its
    repository context a preamble or files."""
    return fim_text(
        request.context,
        request.prefix,
        request.suffix,
        request.fim_order,
        shown=shown,
        family=family,
        files=request.files,
        repo=request.repo,
        path=request.path,
    )


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
