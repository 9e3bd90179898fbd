"""The calibration library: which master calibrates which frame.

Grouping and matching are data (``calibrations.rules`` in the instrument settings): the
file-list columns that must agree (``keys``) and what the exposure time means (``exptime``:
``any``, ``exact``, ``nearest`` or ``scale``). The calibrations stage builds one master per
group; every frame (science, and flats/darks that need a bias or dark) gets its masters
from :meth:`CalibrationLibrary.match`, which names what exists when nothing matches.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from astropy.table import Table

from potpyri_core.safenames import ensure_inside
from potpyri_core.settings import CalibrationRule, InstrumentSettings
from potpyri_core.stages.calibrate import MissingCalibrationError

KIND_ORDER = ("bias", "dark", "flat")
"""Masters are built in this order: darks are bias-subtracted, flats bias- and dark-subtracted."""

_COLUMN = {"amp": "Amp", "binning": "Binning", "filter": "Filter", "coadds": "Coadds"}


def _name(parts: Any) -> str:
    """Group name from key values (``3 coadds`` -> ``3coadds``)."""
    return "_".join(part.replace(" ", "") for part in parts)


def _exp(row: Any) -> float:
    return float(row["Exp"])


class CalibrationLibrary:
    """Masters of one night: grouping of calibration frames and matching to frames.

    Parameters
    ----------
    instrument : InstrumentSettings
        Provides ``calibrations.rules`` and ``calibrations.needed``.
    table : astropy.table.Table
        The night's file table (rows to reduce).
    cals_dir : Path
        Folder of the master files (``red/cals``).
    """

    def __init__(self, instrument: InstrumentSettings, table: Table, cals_dir: Path) -> None:
        self.instrument = instrument
        self.table = table
        self.cals_dir = Path(cals_dir)

    def rule(self, kind: str) -> CalibrationRule:
        """The grouping and matching rule of ``kind``."""
        return self.instrument.calibrations.rules[kind]

    def _keys(self, kind: str, row: Any) -> tuple[str, ...]:
        return tuple(f"{int(row['Coadds'])} coadds" if k == "coadds" else str(row[_COLUMN[k]])
                     for k in self.rule(kind).keys)

    def group_name(self, kind: str, row: Any) -> str:
        """Name of the calibration group of a frame of ``kind`` (``12_2x2``, ``30s_1_1x1``,
        ``10s_H2RG_1x1_3coadds``)."""
        parts = list(self._keys(kind, row))
        if self.rule(kind).exptime in ("exact", "nearest"):
            parts.insert(0, f"{_exp(row):g}s")
        return _name(parts)

    def master_path(self, kind: str, group: str) -> Path:
        """Path of a master (POTPyRI layout ``red/cals/m<kind>_<group>.fits``)."""
        return ensure_inside(self.cals_dir / f"m{kind}_{group}.fits", self.cals_dir)

    def groups(self, kind: str) -> dict[str, list[Any]]:
        """Calibration frames of ``kind`` by group name (for flats, science frames of the
        groups whose flat is a sky flat, see :meth:`is_sky_flat`)."""
        groups: dict[str, list[Any]] = defaultdict(list)
        for row in self.table[self.table["Type"] == kind.upper()]:
            groups[self.group_name(kind, row)].append(row)
        if kind == "flat":
            for row in self.table[self.table["Type"] == "SCIENCE"]:
                name = self.group_name(kind, row)
                if self.instrument.calibrations.flat_source == "sky" or (
                        self.instrument.calibrations.sky_flat_fallback and not any(
                            r["Type"] == "FLAT" for r in groups.get(name, []))):
                    groups[name].append(row)
        return dict(groups)

    @staticmethod
    def is_sky_flat(rows: list[Any]) -> bool:
        """Whether a flat group is made of science frames (a sky flat)."""
        return bool(rows) and all(r["Type"] == "SCIENCE" for r in rows)

    def kinds(self, skip_flat: bool = False) -> list[str]:
        """Kinds the instrument needs, in build order."""
        needed = set(self.instrument.calibrations.needed) - ({"flat"} if skip_flat else set())
        return [k for k in KIND_ORDER if k in needed]

    def needed_groups(self, kind: str) -> dict[str, list[Any]]:
        """Groups of ``kind`` that some science frame (or, for bias and dark, some later
        calibration frame) would be matched to."""
        groups = self.groups(kind)
        users = [r for r in self.table if r["Type"] == "SCIENCE"
                 or (r["Type"] in ("DARK", "FLAT") and KIND_ORDER.index(r["Type"].lower()) > KIND_ORDER.index(kind))]
        needed = {name: rows for name, rows in groups.items() if self._keys(kind, rows[0]) in
                  {self._keys(kind, r) for r in users}}
        covered = {self._keys(kind, rows[0]) for rows in needed.values()}
        for row in self.table[self.table["Type"] == "SCIENCE"]:
            if self._keys(kind, row) not in covered:  # no frames at all: reported when building
                needed.setdefault(self.group_name(kind, row) if self.rule(kind).exptime == "any"
                                  else _name(self._keys(kind, row)), [])
        return needed

    def match(self, kind: str, row: Any) -> Path:
        """The master of ``kind`` for the frame in file-table row ``row``.

        Raises
        ------
        MissingCalibrationError
            Naming the frame, what it needs, and the masters of that kind that exist.
        """
        rule = self.rule(kind)
        keys = self._keys(kind, row)
        candidates = []
        for name, rows in self.groups(kind).items():
            path = self.master_path(kind, name)
            if self._keys(kind, rows[0]) == keys and path.exists():
                candidates.append((abs(_exp(rows[0]) - _exp(row)), _exp(rows[0]), path))
        if rule.exptime == "exact":
            candidates = [c for c in candidates if c[0] < 1e-3]
        if candidates:
            return min(candidates, key=lambda c: (c[0], c[1]))[2]
        wanted = ", ".join(v if k == "coadds" else f"{k} {v}" for k, v in zip(rule.keys, keys, strict=True))
        if rule.exptime in ("exact", "nearest"):
            wanted = f"{_exp(row):g} s, {wanted}"
        present = sorted({f"{_exp(rows[0]):g} s ({', '.join(self._keys(kind, rows[0]))})"
                          if rule.exptime != "any" else ", ".join(self._keys(kind, rows[0]))
                          for name, rows in self.groups(kind).items() if self.master_path(kind, name).exists()})
        raise MissingCalibrationError(
            f"{row['File']}: no master {kind} for {self.instrument.name} {wanted};"
            f" {kind} masters present: {'; '.join(present) if present else 'none'}"
            f" (add {kind} frames to the night, or run the calibrations stage)")

    def masters_for(self, row: Any, kinds: list[str]) -> dict[str, Path]:
        """Matched masters of each of ``kinds`` for one frame (raises when one is missing)."""
        return {kind: self.match(kind, row) for kind in kinds}
