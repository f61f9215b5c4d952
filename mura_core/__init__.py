"""The foundation `pipelines` and `serving` both stand on: names and contracts, parameters
(params.yaml) and settings (the environment), errors, logs, wire formats, ports, and files written
privately or atomically. It imports nothing of either package above it."""
