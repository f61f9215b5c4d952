"""Model cards: what a registered version is, for whoever reviews or promotes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.cards.build import card_artifact_path as card_artifact_path
    from pipelines.cards.build import fetch_card as fetch_card
    from pipelines.cards.build import publish_card as publish_card
    from pipelines.cards.build import write_card as write_card
    from pipelines.cards.facts import artifact as artifact
    from pipelines.cards.facts import load_json as load_json

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "artifact": "facts",
        "card_artifact_path": "build",
        "fetch_card": "build",
        "load_json": "facts",
        "publish_card": "build",
        "write_card": "build",
    },
)
