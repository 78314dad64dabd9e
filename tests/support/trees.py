"""Test tools for hostile workspaces: trees too deep for recursive helpers."""

from __future__ import annotations

import os
from pathlib import Path


def remove_tree(path: Path) -> None:
    """Delete a tree bottom-up, iteratively (via dir_fd): shutil.rmtree recurses once
    per level, so pytest's own clean-up of tmp_path would overflow on 1,100 levels."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    stack = [(os.open(path, flags), "")]
    while stack:
        fd = stack[-1][0]
        child = None
        with os.scandir(fd) as scan:
            for entry in scan:
                if entry.is_dir(follow_symlinks=False):
                    child = entry.name
                    break
                os.unlink(entry.name, dir_fd=fd)
        if child is not None:
            stack.append((os.open(child, flags, dir_fd=fd), child))
            continue
        os.close(fd)
        name = stack.pop()[1]
        if stack:
            os.rmdir(name, dir_fd=stack[-1][0])
    os.rmdir(path)
