"""Safe names from header values, and the check that a product path stays inside its root.

Header values (OBJECT, FILTER2, ...) end up in file names of masters, stacks and the file
list. :func:`safe_component` reduces such a value to a character set that cannot name a
folder, climb out of one, hide a file or break a whitespace-separated table;
:func:`ensure_inside` is the last line of defence for any path built from them.
"""

from __future__ import annotations

import re
from pathlib import Path

SAFE_CHARACTERS = "A-Za-z0-9._+-"
"""Characters kept by :func:`safe_component`; every other run of characters becomes ``_``."""
MAX_LENGTH = 64
"""Longest component :func:`safe_component` returns (file systems allow 255 bytes per name)."""
EMPTY = "unknown"
"""What :func:`safe_component` returns when nothing safe is left."""


class UnsafePathError(ValueError):
    """A path built from header values or a file list lies outside the folder it must stay in."""


def safe_component(text: object) -> str:
    """Return ``text`` as one safe file-name component.

    Every run of characters outside ``A-Z a-z 0-9 . _ + -`` (slashes, spaces, tabs, control
    bytes, quotes, non-ASCII letters) becomes one ``_``; runs of dots collapse to one dot, so
    ``..`` never survives; leading and trailing ``.``, ``_`` and ``-`` are removed (no hidden
    file, nothing that reads as a command-line option). The result is at most
    :data:`MAX_LENGTH` characters and never empty.

    Parameters
    ----------
    text : object
        A header value or any text; ``str(text)`` is used.

    Returns
    -------
    str
        The safe component, :data:`EMPTY` (``"unknown"``) when nothing safe is left.

    Examples
    --------
    >>> safe_component("r/../../../x")
    'r_._._._x'
    >>> safe_component("SN 2024abc")
    'SN_2024abc'
    """
    value = re.sub(f"[^{SAFE_CHARACTERS}]+", "_", str(text))
    value = re.sub(r"\.{2,}", ".", value)
    value = re.sub(r"_{2,}", "_", value)
    value = value.strip("._-")[:MAX_LENGTH].rstrip("._-")
    return value or EMPTY


def ensure_inside(path: str | Path, root: str | Path) -> Path:
    """Return ``path`` when it lies inside ``root``, else raise :class:`UnsafePathError`.

    Both are resolved (symbolic links followed, ``..`` removed) before the comparison, so
    neither a ``..`` component nor a symbolic link inside ``root`` can lead out of it.
    ``path`` need not exist.

    Parameters
    ----------
    path : str or Path
        The path to check.
    root : str or Path
        The folder it must stay in (e.g. ``DATA_PATH/red``).

    Returns
    -------
    Path
        ``path`` unchanged (as a :class:`~pathlib.Path`).

    Raises
    ------
    UnsafePathError
        If the resolved path is ``root`` itself or outside it.
    """
    path = Path(path)
    resolved, top = path.resolve(), Path(root).resolve()
    if resolved == top or not resolved.is_relative_to(top):
        raise UnsafePathError(
            f"refusing to write {path}: it resolves to {resolved}, outside {top}"
            " (a name built from a header value or the file list leaves the products folder)"
        )
    return path
