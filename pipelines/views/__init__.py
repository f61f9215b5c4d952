"""Read views for people: the registered models and what serves them (`mura models`), a version's
lineage from data to serving (`mura lineage`) and the question a reviewer answers."""
