"""Read views for people: the registered models and what serves them (`mura models`), a version's
lineage from data to serving (`mura lineage`) and the question a reviewer answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.views import lineage as lineage
    from pipelines.views.approval_question import question as question
    from pipelines.views.lineage import resolve_spec as resolve_spec
    from pipelines.views.listing import model_versions as model_versions
    from pipelines.views.listing import training_runs as training_runs

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "lineage": None,
        "model_versions": "listing",
        "question": "approval_question",
        "resolve_spec": "lineage",
        "training_runs": "listing",
    },
)
