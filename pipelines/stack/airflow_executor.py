"""The embedded stack's executor: Airflow's LocalExecutor, except that an attempt lost with a dead
scheduler is run again at once and does not spend the task's retries.

LocalExecutor runs each task under the scheduler's process tree. When the scheduler dies, the supervisor
restarts it and its reaper kills what was left of the old one's group, the running task included; the
new scheduler then resets that task instance to be scheduled again (`adopt_or_reset_orphaned_tasks`),
which counts as a new try. A training task with one retry would then fail for good at its next real
error. The platform lost that attempt, not the task: the try is given back before the reset.

Airflow resets only the tasks of a scheduler whose heartbeat is older than
`scheduler_health_check_threshold` (30 s), checked at start and then every 5 minutes: a scheduler
restarted within seconds left its task orphaned for minutes. The embedded stack runs exactly one
scheduler, so at start any other running scheduler job is a dead predecessor: it is marked failed
first, and Airflow's start-up check resets its tasks right away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow.executors.local_executor import LocalExecutor

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

GIVE_BACK_UNTIL_TRY = 4  # from this try on, a lost attempt counts (a task that kills its scheduler)


class MuraLocalExecutor(LocalExecutor):
    """LocalExecutor that runs again, with its try given back, an attempt a dead scheduler abandoned."""

    def start(self) -> None:
        """Start the workers; mark every other running scheduler job failed (see the module)."""
        from airflow.jobs.job import Job, JobState
        from airflow.utils.session import create_session
        from sqlalchemy import update

        super().start()
        if self.job_id is None:  # not started by a scheduler: nothing to tell apart
            return
        mark_failed = (
            update(Job)
            .where(Job.job_type == "SchedulerJob", Job.state == JobState.RUNNING, Job.id != self.job_id)
            .values(state=JobState.FAILED)
        )
        with create_session() as session:
            # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as Result.
            marked = cast("CursorResult[Any]", session.execute(mark_failed)).rowcount
        if marked:
            self.log.warning("%s earlier scheduler job(s) marked failed: their tasks are run again", marked)

    def try_adopt_task_instances(self, tis: Sequence) -> Sequence:
        """Adopt nothing (the processes died with the scheduler); add one try to each, then let Airflow
        reset them for scheduling."""
        for ti in tis:
            if ti.try_number >= GIVE_BACK_UNTIL_TRY:  # a task that takes the scheduler down each time
                self.log.warning(
                    "%s lost attempt %s with a scheduler: rescheduled, the try counts", ti, ti.try_number
                )
                continue
            ti.max_tries += 1
            self.log.warning(
                "%s lost its attempt with the previous scheduler: rescheduled, the try given back", ti
            )
        return tis
