"""Inputs of the stages that rewrite a workspace frame in place (sky, astrometry, alignment).

A stage that must redo its work starts from the product of the stage before it, never from
its own output: the first time a stage takes a frame it keeps that input under
``red/workspace/.inputs/<stage>/``, and a re-run (changed parameters, a kill half-way) reads
the kept input again. The sky stage changes the pixels, so it keeps the whole file (a hard
link to the previous product, which the stage's atomic rewrite leaves untouched); astrometry
and alignment change only the header, so they keep the header and take the pixels from the
frame itself.

A kept input is valid while its upstream signature cards (``FRMKEY``, ``SKYKEY``, ...) equal
the frame's: when an earlier stage remade the frame, the frame itself is the new input.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from astropy.io import fits

from potpyri_core.frames import Frame

KEPT_DIR = ".inputs"
"""Folder of ``red/workspace`` with the stages' kept inputs."""


class LostInputError(RuntimeError):
    """A frame already carries a stage's work but the stage's kept input is gone."""


def kept_path(path: Path, stage: str, header_only: bool) -> Path:
    """Where ``stage`` keeps its input for the workspace frame ``path``."""
    return path.parent / KEPT_DIR / stage / (f"{path.name}.hdr" if header_only else path.name)


def _kept_header(kept: Path, header_only: bool) -> fits.Header:
    return fits.Header.fromfile(kept) if header_only else fits.getheader(kept)


def _keep(path: Path, kept: Path, header_only: bool) -> None:
    """Keep the frame ``path`` (or its header) as ``kept``, atomically."""
    kept.parent.mkdir(parents=True, exist_ok=True)
    tmp = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
    try:
        if header_only:
            fits.getheader(path).tofile(tmp, overwrite=True)
        else:
            tmp.unlink(missing_ok=True)
            try:
                os.link(path, tmp)  # the stage replaces path by a new file: the link keeps this one
            except OSError:
                shutil.copyfile(path, tmp)
        os.replace(tmp, kept)
    finally:
        tmp.unlink(missing_ok=True)


def _input_path(path: Path, stage: str, upstream: tuple[str, ...], own: tuple[str, ...],
                header_only: bool) -> Path:
    """The kept input of ``stage`` for ``path`` (kept now when the frame is a fresh input)."""
    kept = kept_path(path, stage, header_only)
    header = fits.getheader(path)
    if kept.exists():
        previous = _kept_header(kept, header_only)
        if all(previous.get(key) == header.get(key) for key in upstream):
            return kept
    if any(key in header for key in own):
        raise LostInputError(f"{path.name} already went through the {stage} stage and its input"
                             f" ({kept.parent}) is gone or out of date: redo the earlier stages"
                             " (potpyri reduce --force)")
    _keep(path, kept, header_only)
    return kept


def input_frame(path: Path, stage: str, upstream: tuple[str, ...], own: tuple[str, ...]) -> Frame:
    """The frame ``stage`` starts from: the previous stage's product of ``path``.

    Parameters
    ----------
    path : Path
        Workspace frame the stage rewrites.
    stage : str
        Stage name (folder of its kept inputs).
    upstream : tuple of str
        Signature cards of the earlier stages: a kept input is used while they match the frame.
    own : tuple of str
        Cards the stage writes: a frame with one of them and no valid kept input raises
        :class:`LostInputError` (the stage would otherwise be applied twice).

    Returns
    -------
    Frame
        The input, with the pixels of the previous product.
    """
    return Frame.from_file(_input_path(path, stage, upstream, own, header_only=False))


def input_header(path: Path, stage: str, upstream: tuple[str, ...], own: tuple[str, ...]) -> fits.Header:
    """The header ``stage`` starts from (for stages that change only the header); arguments as
    :func:`input_frame`."""
    return fits.Header.fromfile(_input_path(path, stage, upstream, own, header_only=True))


def input_header_frame(path: Path, stage: str, upstream: tuple[str, ...], own: tuple[str, ...]) -> Frame:
    """The frame ``path`` with the header ``stage`` started from (pixels from the frame, which a
    header-only stage does not change); arguments as :func:`input_frame`."""
    header = input_header(path, stage, upstream, own)
    frame = Frame.from_file(path)
    frame.header = header
    return frame
