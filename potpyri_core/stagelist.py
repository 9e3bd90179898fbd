"""The pipeline as data: an ordered list of stages.

Each :class:`Stage` says what it is called, what unit of work it iterates over, which hooks
it calls, what it reads and writes, and which ``--skip-*`` run option turns off which of its
hooks. The runner (:class:`potpyri_core.pipeline.Pipeline`), ``--stages`` and the closing
summary all use this one list. A plugin adds a stage through the ``potpyri_stages`` provide
hook: a :class:`Stage` with ``after`` naming the stage it follows, and optionally its own
parameter model, which then appears in ``-p`` and the provenance under the stage's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from potpyri_core.params import StepParams
    from potpyri_core.pipeline import Pipeline


@dataclass(frozen=True)
class Stage:
    """One stage of a reduction.

    Attributes
    ----------
    name : str
        Name used by ``--stages`` and the summary.
    run : callable
        ``run(pipeline)`` does the stage's work through the pipeline's helpers (its rows,
        paths, hooks, parameters, ``map`` and ``record``); it must be a module-level function.
    unit : str
        What one unit of work is (``night``, ``calibration group``, ``frame``, ``target``).
    hooks : tuple of str
        The hooks the stage calls.
    reads, writes : str
        What the stage reads and writes (documentation, summary, ``potpyri stages``).
    skips : tuple of (str, str)
        ``(run option, hook)`` pairs: with the option set, the hook is not called
        (``"*"``: the whole stage is skipped).
    after : str, optional
        For plugin stages: the stage this one runs after.
    params : tuple of (str, type), optional
        For plugin stages: ``(step name, parameter model)``.
    """

    name: str
    run: Callable[[Pipeline], None]
    unit: str
    hooks: tuple[str, ...]
    reads: str
    writes: str
    skips: tuple[tuple[str, str], ...] = ()
    after: str | None = None
    params: tuple[str, type[StepParams]] | None = None

    def skipped_hooks(self, options: object) -> set[str]:
        """Hooks of this stage turned off by the run options (``"*"`` for the whole stage)."""
        return {hook for option, hook in self.skips if getattr(options, option, False)}


def ordered(core: list[Stage], extra: list[Stage]) -> list[Stage]:
    """Insert plugin stages after the stage each names (in the order given).

    Raises
    ------
    ValueError
        For a plugin stage with a duplicate name or an unknown ``after``.
    """
    stages = list(core)
    for stage in extra:
        names = [s.name for s in stages]
        if stage.name in names:
            raise ValueError(f"plugin stage {stage.name!r}: a stage of that name already exists")
        if stage.after not in names:
            raise ValueError(f"plugin stage {stage.name!r}: after={stage.after!r} is not a stage"
                             f" (stages: {', '.join(names)})")
        stages.insert(names.index(stage.after) + 1, stage)
    return stages
