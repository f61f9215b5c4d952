"""ML logic of the MURA platform: data, validation, training, evaluation and registry."""
