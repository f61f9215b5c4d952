"""The MLflow model registry side of the platform: tracking server, registration, gate, promotion, deploy."""
