"""Registry decisions: register a run's SavedModel as a version, gate it against the floors and the
champion (the signed verdict), apply the promotion rule, move aliases (`mura promote`, rollback) and
act on a reviewer's approval. The tracking server lives in `pipelines.tracking`, serving in
`pipelines.deployment`, what people read in `pipelines.views` and `pipelines.cards`."""
