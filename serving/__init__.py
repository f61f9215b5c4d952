"""TF Serving export, model repository, local TF-Serving-compatible server and clients."""
