"""Flows: one module per DAG (retrain, deploy, monitor, pacs, external), each the steps its DAG's
tasks call with typed stages (mura_core.stages); the DAG file imports only its flow, and the `mura`
commands compose the same functions. `data` holds the data steps several flows share.
"""
