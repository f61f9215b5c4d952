"""The gate's report (stages.Validation: success, each failed rule with counts and example paths) and its summary."""

from __future__ import annotations

import math
from typing import Any

from mura_core.stages import Validation
from pipelines.validation.suite import rule_of

STUDY_COLUMNS = ("study_path", "images", "labels", "csv_entries")


def plain(value: Any) -> Any:
    """`value` with numpy scalars, tuples and NaN turned into JSON-ready Python values."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _examples(result: dict, limit: int) -> list[str]:
    paths: list[str] = []
    for entry in result.get("partial_unexpected_index_list") or []:
        path = (entry.get("image_path") or entry.get("study_path")) if isinstance(entry, dict) else None
        if path is not None and path not in paths:
            paths.append(path)
    return paths[:limit]


def _values(unexpected: list, limit: int) -> list:
    """Distinct offending values worth showing: not booleans (the rule says it) and not paths (examples do)."""
    shown: list = []
    for value in plain(unexpected):
        if isinstance(value, bool) or (isinstance(value, str) and value.startswith("MURA-v1.1/")):
            continue
        if value not in shown:
            shown.append(value)
    return shown[:limit]


def _expected(kwargs: dict) -> str:
    if "value_set" in kwargs:
        return "in {" + ", ".join(map(str, kwargs["value_set"])) + "}"
    if "type_list" in kwargs:
        return "of type " + "/".join(kwargs["type_list"])
    if "min_value" in kwargs or "max_value" in kwargs:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        return f"between {low if low is not None else '-inf'} and {high if high is not None else 'inf'}"
    return "as described"


def _message(failure: dict, kwargs: dict) -> str:
    rule, count = failure["rule"], failure.get("unexpected_count")
    if failure.get("exception"):
        return f"{rule}: could not be checked: {failure['exception']}"
    if failure.get("missing"):
        return (
            f"{rule}: {len(failure['missing'])} value(s) missing: {', '.join(map(str, failure['missing']))}"
        )
    if count:
        unit = "study(ies)" if failure.get("column") in STUDY_COLUMNS else "image(s)"
        text = f"{rule}: {count} {unit} fail ({failure['description']})"
        reasons = failure.get("reasons") or {}
        if failure["examples"]:
            shown = [f"{path} ({reasons[path]})" if path in reasons else path for path in failure["examples"]]
            text += "; e.g. " + ", ".join(shown)
        if failure.get("unexpected_values") and not reasons:
            text += f"; values {', '.join(map(str, failure['unexpected_values']))}"
        return text
    return f"{rule}: observed {failure.get('observed_value')}, expected {_expected(kwargs)} ({failure['description']})"


def _failure(result, limit: int, notes: dict[str, dict[str, str]]) -> dict:
    config, details = result.expectation_config, result.result or {}
    failure = {
        "rule": rule_of(config),
        "expectation": config.type,
        "column": config.kwargs.get("column") or config.kwargs.get("column_A"),
        "description": config.description or "",
        "unexpected_count": details.get("unexpected_count"),
        "element_count": details.get("element_count"),
        "observed_value": details.get("observed_value"),
        "examples": _examples(details, limit),
        "unexpected_values": _values(details.get("partial_unexpected_list") or [], limit),
        "missing": details.get("partial_missing_list") or [],
    }
    exception = result.exception_info or {}
    if exception.get("raised_exception"):
        failure["exception"] = exception.get("exception_message")
    reasons = notes.get(failure["rule"], {})
    if any(path in reasons for path in failure["examples"]):
        failure["reasons"] = {path: reasons[path] for path in failure["examples"] if path in reasons}
    failure["message"] = _message(failure, config.kwargs)
    return plain(failure)


def build_report(
    checkpoint_results: list,
    counts: dict[str, int],
    limit: int,
    notes: dict[str, dict[str, str]],
    docs_url: str | None,
    timings: dict[str, float],
    data_version: str,
) -> Validation:
    """The report of the gate's checkpoint runs; `notes` maps rule -> path -> why that row fails."""
    results = [
        item for outcome in checkpoint_results for run in outcome.run_results.values() for item in run.results
    ]
    failures = [_failure(result, limit, notes) for result in results if not result.success]
    fields: dict[str, Any] = {
        "success": all(outcome.success for outcome in checkpoint_results) and not failures,
        "rows": counts["images"],
        "studies": counts["studies"],
        "rules_checked": len(results),
        "rules_failed": len(failures),
        "failed_rules": [failure["rule"] for failure in failures],
        "failures": failures,
        "data_docs": docs_url,
        "data_version": data_version,
        "timings_s": {name: round(seconds, 3) for name, seconds in timings.items()},
    }
    return Validation(summary=summary_text(fields), **fields)


def summary_text(report: dict) -> str:
    """A few readable lines: verdict, one line per failed rule, where the Data Docs are."""
    verdict = "passed" if report["success"] else "FAILED"
    lines = [
        f"Data validation {verdict}: {report['rules_failed']} of {report['rules_checked']} rules failed "
        f"on {report['rows']} images" + (f" in {report['studies']} studies." if "studies" in report else ".")
    ]
    lines += [f"  - {failure['message']}" for failure in report["failures"]]
    if report.get("data_docs"):
        lines.append(f"Data Docs: {report['data_docs']}")
    return "\n".join(lines)
