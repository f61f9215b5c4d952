"""Run one DAG with `dag.test()` in this process and print its outcome as JSON (used by the DAG tests).

Run in a subprocess whose environment carries AIRFLOW_HOME, the DAGs folder and the SQLite URL, so
Airflow reads its configuration at import time from there and nothing leaks into the test process.
"""

from __future__ import annotations

import json
import sys


def main(dag_id: str, conf: dict) -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    dag = DagBag(dag_folder=sys.argv[3]).get_dag(dag_id)
    run = dag.test(run_conf=conf)
    with create_session() as session:
        instances = run.get_task_instances(session=session)
        tasks = {
            instance.task_id + (f"[{instance.map_index}]" if instance.map_index >= 0 else ""): instance.state
            for instance in instances
        }
        results = {
            key: instance.xcom_pull(task_ids=instance.task_id, map_indexes=instance.map_index)
            for key, instance in ((k, i) for k, i in zip(tasks, instances, strict=True))
            if instance.state == "success"
        }
    print(
        "DAG-RESULT "
        + json.dumps(
            {
                "state": str(run.state),
                "run_id": run.run_id,
                "tasks": {k: str(v) for k, v in tasks.items()},
                "results": results,
            },
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], json.loads(sys.argv[2])))
