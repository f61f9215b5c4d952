"""The embedded stack (`mura up|down|status`): MLflow, the serving process and Airflow on one machine."""
