"""Regenerate the settings docs from the settings dataclasses, or check they are current.

The README table (the Neovim docs read it there) and the VS Code extension's
``contributes.configuration.properties`` are both derived from
``codellama_lsp.core.settings``; the generators live here, outside the server, so the
runtime module holds only what the server needs.

    python scripts/generate_settings.py            # rewrite README.md and package.json
    python scripts/generate_settings.py --check    # exit 1, with a diff, when stale

``--readme PATH`` / ``--package-json PATH`` work on those files only.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codellama_lsp.core.settings import SECTION, json_schema_properties

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PACKAGE_JSON = ROOT / "vscode-client" / "package.json"

START, END = "<!-- settings:start -->\n", "<!-- settings:end -->"

#: Keys the VS Code extension owns (how it starts the server, tracing); kept as they are.
EXTENSION_KEY_PREFIXES = (f"{SECTION}.server.", f"{SECTION}.trace.")

#: Longer enums (the model catalog) are named in the description instead.
MAX_LISTED_ENUM = 6


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{json.dumps(value)}`"


def settings_markdown() -> str:
    """The settings table of README.md."""
    rows = ["| Setting | Default | Meaning |", "| --- | --- | --- |"]
    for key, prop in json_schema_properties().items():
        extra = ""
        enum = prop.get("enum")
        if enum is not None and len(enum) <= MAX_LISTED_ENUM:
            extra = f" One of {', '.join(f'`{v}`' for v in enum)}."
        elif "minimum" in prop:
            extra = f" Range {prop['minimum']} to {prop['maximum']}."
        meaning = f"{prop['markdownDescription']}{extra}"
        rows.append(f"| `{key}` | {_shown(prop['default'])} | {meaning} |")
    return "\n".join(rows) + "\n"


def readme_text(text: str) -> str:
    """``text`` with the table between the settings markers regenerated."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}{settings_markdown()}{END}{tail}"


def package_json_properties(current: Mapping[str, Any]) -> dict[str, Any]:
    """The extension's configuration properties: the server's, then the extension's own."""
    props: dict[str, Any] = dict(json_schema_properties())
    for key, value in current.items():
        if key.startswith(EXTENSION_KEY_PREFIXES):
            props[key] = value
    return props


def package_json_text(text: str) -> str:
    """The manifest ``text`` with only ``contributes.configuration.properties`` rewritten."""
    manifest = json.loads(text)
    configuration = manifest.setdefault("contributes", {}).setdefault("configuration", {})
    configuration["properties"] = package_json_properties(configuration.get("properties", {}))
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def _stale(path: Path, generate: Callable[[str], str], check: bool) -> bool:
    """Regenerate ``path`` (or, with ``check``, report how it differs); True when it was stale."""
    text = path.read_text(encoding="utf-8")
    new = generate(text)
    if new == text:
        return False
    if check:
        diff = difflib.unified_diff(
            text.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"{path} (committed)",
            f"{path} (generated)",
        )
        sys.stdout.write(f"{path} is stale:\n{''.join(diff)}")
    else:
        path.write_text(new, encoding="utf-8")
        sys.stdout.write(f"rewrote {path}\n")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("--readme", type=Path, help="only this README (default: both files)")
    parser.add_argument("--package-json", type=Path, help="only this VS Code manifest")
    args = parser.parse_args(argv)
    targets: list[tuple[Path, Callable[[str], str]]] = []
    if args.readme is not None or args.package_json is None:
        targets.append((args.readme or README, readme_text))
    if args.package_json is not None or args.readme is None:
        targets.append((args.package_json or PACKAGE_JSON, package_json_text))
    stale = [path for path, generate in targets if _stale(path, generate, args.check)]
    if args.check and stale:
        sys.stdout.write(f"regenerate: python {Path(__file__).relative_to(ROOT)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
