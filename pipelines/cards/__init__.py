"""Model cards: what a registered version is, for whoever reviews or promotes it."""

from pipelines.cards.build import card_artifact_path, fetch_card, publish_card, write_card

__all__ = ["card_artifact_path", "fetch_card", "publish_card", "write_card"]
