"""Downloading catalog models from the Hugging Face Hub, resumable, with progress.

huggingface-hub does the transfer (resume after an interruption, tokens from
``HF_TOKEN``, mirrors from ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``); this module
turns its failures into one clear line and its progress into a callback the
server forwards to the editor as ``$/progress``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .catalog import CatalogEntry, cached_path, local_path
from .errors import ModelError

log = logging.getLogger(__name__)

#: Called with (bytes done, bytes in total) as the download advances.
Progress = Callable[[int, int], None]


class DownloadError(ModelError):
    pass


class OfflineError(DownloadError):
    """The hub cannot be reached (no network, or HF_HUB_OFFLINE is set)."""


class DownloadCancelled(DownloadError):
    pass


def how_to_get(entry: CatalogEntry) -> str:
    return (
        f"run `codellama-lsp models download {entry.name}` on a connected machine "
        f"(or copy {entry.filename} from https://huggingface.co/{entry.repo_id} to "
        f"{local_path(entry)}), or set codellama.model.path to a Code Llama GGUF file"
    )


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def remote_size(entry: CatalogEntry, timeout: float = 10) -> int | None:
    """The file's size on the hub; OfflineError when the hub cannot be reached.

    A quick HEAD before the transfer: offline, it fails at once instead of after
    the download's retries, and online the editor learns the size up front.
    """
    if offline():
        raise OfflineError(f"{entry.name} is not downloaded and HF_HUB_OFFLINE is set")
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        meta = get_hf_file_metadata(hf_hub_url(entry.repo_id, entry.filename), timeout=timeout)
    except Exception as exc:  # DNS, refused connection, proxy, TLS: all mean "cannot reach"
        raise OfflineError(
            f"{entry.name} is not downloaded and huggingface.co cannot be reached: "
            f"{_first_line(exc)}"
        ) from exc
    return int(meta.size) if meta.size is not None else None


def download(
    entry: CatalogEntry,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    root: Path | None = None,
) -> Path:
    """The local file of ``entry``, downloaded first if needed (resuming a partial one).

    Without ``progress`` huggingface-hub draws its own bar on stderr (the CLI).
    """
    found = cached_path(entry, root)
    if found is not None:
        return found
    if offline():
        raise OfflineError(f"{entry.name} is not downloaded and HF_HUB_OFFLINE is set")
    from huggingface_hub import hf_hub_download

    target = local_path(entry, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"local_dir": str(target.parent)}
    if progress is not None or cancel is not None:
        kwargs["tqdm_class"] = _callback_bar(progress, cancel)
    log.info("downloading %s/%s to %s", entry.repo_id, entry.filename, target.parent)
    try:
        path = Path(hf_hub_download(entry.repo_id, entry.filename, **kwargs))
    except DownloadCancelled:
        raise
    except Exception as exc:
        name = type(exc).__name__
        if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
            raise OfflineError(
                f"{entry.name} is not downloaded and huggingface.co cannot be reached"
            ) from exc
        raise DownloadError(
            f"downloading {entry.repo_id}/{entry.filename} failed: {_first_line(exc)}"
        ) from exc
    if path != target and not target.exists():
        path.replace(target)
    return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _callback_bar(progress: Progress | None, cancel: threading.Event | None) -> type:
    """A tqdm class that reports to ``progress`` and stops the transfer on ``cancel``."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    class CallbackBar(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # no terminal bar: the editor shows progress
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("download cancelled")
            # disable=True turns tqdm's counting off; keep our own.
            self.n += n or 0
            if progress is not None and self.total:
                progress(int(self.n), int(self.total))
            return None

    return CallbackBar
