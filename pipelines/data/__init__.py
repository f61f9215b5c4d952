"""MURA data layer: the release layout, the manifest, the synthetic generator, import and DVC."""
