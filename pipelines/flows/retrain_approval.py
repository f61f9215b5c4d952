"""mura_retrain's task `approve`: Airflow's human-in-the-loop operator asking a reviewer about a passing
challenger, with the evidence in its body (pipelines.registry.approval).

The question is built when the task runs (subject and body come from the gate's verdict, not from the
DAG file), and only when the run's `approval` is `required` and the version passed the gate as
challenger; otherwise the step passes the verdict on without asking. While it waits (deferred: no
worker slot), its trigger looks at the registry every CHECK_SECONDS: when `champion` moves in the
MLflow UI or by `mura promote`, the question is closed (answered with the default, keep) and the step
records why, instead of leaving a stale question for the reviewer. An answer in the UI or over the
REST API resumes the step itself (Airflow 3.3's API resumes a waiting task directly), so the trigger
never reports answers: two resumes of one task made Airflow kill the second. `gate.approval_timeout`
without an answer keeps the version challenger. Respondents: the Airflow user `reviewer` only.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.triggers.base import TriggerEvent

from mura_core.contracts import KEEP_OPTION, PROMOTE_OPTION, REVIEWER_ROLE

ASKED_CHAMPION_KEY = "asked_champion"  # XCom: the champion the question was asked against
CHECK_SECONDS = 30.0  # how often a waiting question looks whether the champion moved
# An answer stored while the step had not deferred yet resumes nothing: after this long the trigger
# reports it itself (the API resumes a deferred step within a second, and its trigger is then cancelled).
UNRESUMED_ANSWER_SECONDS = 60.0
DEFER_MARGIN = datetime.timedelta(hours=1)  # past the approval timeout, Airflow fails a stuck step


class ChampionWatchingTrigger(HITLTrigger):
    """HITLTrigger (a response, or the timeout's default) that also ends the wait when the question went
    stale: the champion moved, or the version became champion, outside the approval."""

    def __init__(
        self,
        *,
        model: str,
        version: int,
        asked_champion: int | None,
        check_seconds: float = CHECK_SECONDS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.model, self.version, self.asked_champion = model, int(version), asked_champion
        self.check_seconds = check_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, arguments = super().serialize()
        arguments.update(
            model=self.model,
            version=self.version,
            asked_champion=self.asked_champion,
            check_seconds=self.check_seconds,
        )
        return f"{type(self).__module__}.{type(self).__qualname__}", arguments

    async def _stale(self) -> str | None:
        from asgiref.sync import sync_to_async

        from pipelines.registry import stale

        try:
            return await sync_to_async(stale)(self.model, self.version, self.asked_champion)
        except Exception as error:  # noqa: BLE001 - the registry is down: keep waiting, look again later
            self.log.warning(
                "could not read %s's aliases (%s); looking again in %s s",
                self.model,
                error,
                self.check_seconds,
            )
            return None

    async def _close(self, reason: str) -> TriggerEvent:
        """Answer the question with its default (so the UI stops asking) and say why (the execution API's
        answer does not resume the step: the event does)."""
        from airflow.sdk.execution_time.hitl import update_hitl_detail_response
        from asgiref.sync import sync_to_async

        closed = await sync_to_async(update_hitl_detail_response)(
            ti_id=self.ti_id, chosen_options=list(self.defaults or []), params_input={}
        )
        self.log.info("[HITL] question closed: %s", reason)
        return TriggerEvent(
            {
                "chosen_options": list(self.defaults or []),
                "params_input": {},
                "responded_at": closed.responded_at,
                "responded_by_user": None,
                "timedout": False,
                "stale": reason,
            }
        )

    async def _answered(self) -> bool:
        """A person answered (the API then resumed the step, and this trigger is about to be cancelled)."""
        from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail
        from asgiref.sync import sync_to_async

        try:
            detail = await sync_to_async(get_hitl_detail_content_detail)(ti_id=self.ti_id)
        except Exception as error:  # noqa: BLE001 - Airflow's API hiccuped: look again at the next check
            self.log.warning("could not read the question's answer (%s); looking again", error)
            return False
        return bool(detail.response_received)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.sdk.timezone import utcnow

        waited, answered_for = 0.0, 0.0  # the first look after CHECK_SECONDS: a step resumed seconds
        while True:  # after it deferred races the executor's report of its deferral
            await asyncio.sleep(self.poke_interval)
            waited += self.poke_interval
            timed_out = bool(self.timeout_datetime and self.timeout_datetime < utcnow())
            if not timed_out and waited < self.check_seconds:
                continue
            if await self._answered():
                answered_for += waited
                waited = 0.0
                if answered_for >= UNRESUMED_ANSWER_SECONDS:  # still here: nothing resumed the step
                    event = await self._handle_response()
                    if event:
                        yield event
                        return
                continue  # otherwise never a second resume: wait to be cancelled
            waited = 0.0
            try:
                if timed_out:
                    yield await self._handle_timeout()
                    return
                reason = await self._stale()
                if reason:
                    yield await self._close(reason)
                    return
            except Exception as error:  # noqa: BLE001 - a failed close or timeout answer: try again later
                self.log.warning("could not close the question (%s); trying again at the next check", error)


def _name(user) -> str:
    """The Airflow user who answered (a HITLUser mapping: id and name)."""
    fields = user if isinstance(user, dict) else vars(user)
    return str(fields.get("name") or fields.get("id"))


class ReviewerApproval(HITLOperator):
    """Promote or keep the challenger of `verdict`: the gate task's output (a TaskFlow argument, which
    also makes the gate its upstream), with the run's approval in it."""

    template_fields = (*HITLOperator.template_fields, "verdict")

    def __init__(self, *, verdict: Any, **kwargs) -> None:
        from pipelines.flows.retrain import approval_timeout

        waits = approval_timeout()  # params.yaml gate.approval_timeout
        super().__init__(
            subject="A reviewer's decision on the retrain's challenger",  # replaced when the task runs
            options=[PROMOTE_OPTION, KEEP_OPTION],
            defaults=[KEEP_OPTION],  # what a timeout (or a stale question) decides
            assigned_users=[{"id": REVIEWER_ROLE, "name": REVIEWER_ROLE}],
            response_timeout=waits,
            **kwargs,
        )
        self.waits = waits  # typed as set, where HITL's own response_timeout is optional
        self.verdict = verdict  # an XComArg here; the gate's dict once Airflow renders the fields

    def _verdict(self):
        from pipelines.flows import retrain as flow

        return flow.GateVerdict.from_xcom(self.verdict)

    def execute(self, context) -> Any:
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail
        from airflow.sdk.timezone import utcnow

        from pipelines.flows import retrain as flow

        verdict = self._verdict()
        asked = flow.approval_question(verdict, context["run_id"])
        if asked is None:
            return verdict.to_xcom()
        context["ti"].xcom_push(key=ASKED_CHAMPION_KEY, value=asked.champion)
        upsert_hitl_detail(
            ti_id=context["task_instance"].id,
            options=self.options,
            subject=asked.subject,
            body=asked.body,
            defaults=self.defaults,
            multiple=False,
            params=self.serialized_params,
            assigned_users=self.assigned_users,
        )
        self.log.info("asked the reviewer: %s", asked.subject)
        self.defer(
            trigger=ChampionWatchingTrigger(
                ti_id=context["task_instance"].id,
                options=self.options,
                defaults=self.defaults,
                params=self.serialized_params,
                multiple=False,
                timeout_datetime=utcnow() + self.waits,
                model=verdict.model,
                version=verdict.version,
                asked_champion=asked.champion,
            ),
            method_name="execute_complete",
            timeout=self.waits + DEFER_MARGIN,
        )

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        from pipelines.flows import retrain as flow

        answer = super().execute_complete(context, event)
        responder = answer["responded_by_user"]
        answered = responder is not None and not event.get("stale")
        chosen = answer["chosen_options"][0] if answered else None
        by = _name(responder) if answered else None
        asked = context["ti"].xcom_pull(task_ids=self.task_id, key=ASKED_CHAMPION_KEY)
        verdict = flow.approval_answer(self._verdict(), chosen, by, context["run_id"], asked)
        return verdict.to_xcom()
