"""How a plan becomes batched jobs: which frames each model-step and caption job takes, and what a
model-step job reads. Pure functions of the plan and the settings, tested in tests/test_batching.py;
rules/common.smk builds one ``BatchPlan`` per version of the plan and asks it.

Batches are cut by the frames' own hashes (layout.content_batches), so re-planning one frame
re-forms its own batch and seldom a neighbour's.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import layout

Batches = tuple[dict[str, list[str]], dict[str, str]]  # {batch: [frames]}, {frame: batch}


class BatchPlan:
    """The batches of one plan ({frame: strategy, or excluded/failed})."""

    def __init__(self, plan: Mapping[str, str], frame_steps: Mapping[str, Mapping[str, str | None]],
                 frames_per_job: int, out: str):
        self.plan = plan
        # {model strategy: {step: the step whose entry it continues, or None}}
        self.frame_steps = frame_steps
        self.frames_per_job = frames_per_job
        self.out = out
        self._batches: dict[tuple, Batches] = {}
        self._sources: dict[str, dict[str, str | None]] = {}

    def batches(self, strategies: tuple[str, ...], size: int) -> Batches:
        """The frames planned for ``strategies`` in batches of about ``size``."""
        key = (tuple(strategies), size)
        if key not in self._batches:
            frames = [frame for frame, strategy in self.plan.items() if strategy in strategies]
            batches = layout.content_batches(frames, size)
            self._batches[key] = batches, {frame: batch for batch, members in batches.items() for frame in members}
        return self._batches[key]

    def step_strategies(self, step: str) -> tuple[str, ...]:
        """The model strategies whose frames go through ``step``."""
        return tuple(strategy for strategy, steps in self.frame_steps.items() if step in steps)

    def step_batches(self, step: str) -> Batches:
        """A model step's batches: the frames of every strategy that uses it."""
        return self.batches(self.step_strategies(step), self.frames_per_job)

    def step_manifest(self, step: str, frame: str) -> str:
        """The manifest of the ``step`` batch ``frame`` is in."""
        batch = self.step_batches(step)[1].get(frame)
        if batch is None:
            raise ValueError(f"frame {frame} is not planned for the {step} step")
        return layout.step_manifest(self.out, step).format(batch=batch)

    def step_sources(self, step: str) -> dict[str, str | None]:
        """{frame: the manifest of the step whose entry it continues, or None} for every frame of ``step``."""
        if step not in self._sources:
            sources = {}
            for frame in self.step_batches(step)[1]:
                source = self.frame_steps[self.plan[frame]][step]
                sources[frame] = None if source is None else self.step_manifest(source, frame)
            self._sources[step] = sources
        return self._sources[step]

    def step_members(self, step: str, batch: str, frame_file) -> dict[str, dict]:
        """A model step job's members: {frame: {frame file, analysis, source manifest}}."""
        sources = self.step_sources(step)
        return {frame: {"frame": frame_file(frame), "analysis": layout.analysis(self.out).format(frame=frame),
                        "source": sources[frame]}
                for frame in self.step_batches(step)[0][batch]}
