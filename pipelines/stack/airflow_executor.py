"""The embedded stack's executor: Airflow's LocalExecutor, except that an attempt lost with a dead
scheduler does not spend the task's retries.

LocalExecutor runs each task under the scheduler's process tree. When the scheduler dies, the supervisor
restarts it and its reaper kills what was left of the old one's group, the running task included; the
new scheduler then resets that task instance to be scheduled again (`adopt_or_reset_orphaned_tasks`),
which counts as a new try. A training task with one retry would then fail for good at its next real
error. The platform lost that attempt, not the task: the try is given back before the reset.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow.executors.local_executor import LocalExecutor


class MuraLocalExecutor(LocalExecutor):
    """LocalExecutor that returns the try of an attempt a dead scheduler abandoned."""

    def try_adopt_task_instances(self, tis: Sequence) -> Sequence:
        """Adopt nothing (the processes died with the scheduler); add one try to each, then let Airflow
        reset them for scheduling."""
        for ti in tis:
            ti.max_tries += 1
            self.log.warning(
                "%s lost its attempt with the previous scheduler: rescheduled, the try given back", ti
            )
        return tis
