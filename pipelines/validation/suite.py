"""The expectation suite of the data gate: one named rule per expectation, thresholds from params.yaml.

Every expectation carries `meta.rule` (the name reports and tests use) and a description that Data
Docs show beside the check. Rules are specs (rule, GX expectation class, description, arguments)
so the whole gate reads as one table.
"""

from __future__ import annotations

import re

from mura_core.contracts import BODY_PARTS
from pipelines.data import IMAGE_PATH_PATTERN, STUDY_PATH_PATTERN
from pipelines.validation.frame import REQUIRED_COLUMNS

SUITE_NAME = "mura_manifest"
STUDY_SUITE_NAME = "mura_studies"
SPLIT_NAMES = ("train", "holdout", "valid")
KEY_COLUMNS = ("image_path", "split", "body_part", "patient_id", "study_id", "label")
# GX type names per value kind (string columns are cast to object, so GX checks each value's type).
TYPE_NAMES = {"str": ["str"], "int": ["int64", "int32"], "bool": ["bool"]}
# The layout's pattern without its named groups (pandas warns about groups it does not extract).
IMAGE_PATH_REGEX = re.sub(r"\(\?P<\w+>", "(?:", IMAGE_PATH_PATTERN.pattern)
STUDY_PATH_REGEX = re.sub(r"\(\?P<\w+>", "(?:", STUDY_PATH_PATTERN.pattern)

Spec = tuple[str, str, str, dict]


def _in_set(rule: str, column: str, values, description: str) -> Spec:
    return rule, "ExpectColumnValuesToBeInSet", description, {"column": column, "value_set": list(values)}


def _between(rule: str, column: str, low, high, description: str) -> Spec:
    bounds = {"min_value": low} if high is None else {"min_value": low, "max_value": high}
    return rule, "ExpectColumnValuesToBeBetween", description, {"column": column, **bounds}


def _regex(rule: str, column: str, regex: str, description: str) -> Spec:
    return rule, "ExpectColumnValuesToMatchRegex", description, {"column": column, "regex": regex}


def _schema_specs() -> list[Spec]:
    specs = [
        (
            "required_columns",
            "ExpectTableColumnsToMatchSet",
            "The manifest has every column the gate reads.",
            {"column_set": list(REQUIRED_COLUMNS), "exact_match": False},
        )
    ]
    for column, kind in REQUIRED_COLUMNS.items():
        specs.append(
            (
                f"type_{column}",
                "ExpectColumnValuesToBeInTypeList",
                f"`{column}` holds {kind} values.",
                {"column": column, "type_list": TYPE_NAMES[kind]},
            )
        )
    for column in KEY_COLUMNS:
        specs.append(
            (
                f"not_null_{column}",
                "ExpectColumnValuesToNotBeNull",
                f"Every row has a `{column}`.",
                {"column": column},
            )
        )
    return specs


def _domain_specs(params: dict) -> list[Spec]:
    # A site's external release is all evaluation: its gate asks for `valid` only.
    required = list(params.get("required_splits", SPLIT_NAMES))
    return [
        _in_set("split_known", "split", SPLIT_NAMES, "Split is train, holdout or valid."),
        (
            "all_splits_present",
            "ExpectColumnDistinctValuesToContainSet",
            "Train, holdout and valid all have images."
            if len(required) > 1
            else f"{required[0]} has images.",
            {"column": "split", "value_set": required},
        ),
        _in_set("body_part_known", "body_part", BODY_PARTS, "Body part is one of the 7 MURA study types."),
        _in_set("label_binary", "label", (0, 1), "Study label is 0 (normal) or 1 (abnormal)."),
        _regex(
            "image_path_pattern",
            "image_path",
            IMAGE_PATH_REGEX,
            "Image path is MURA-v1.1/<split>/XR_<PART>/patientNNNNN/studyN_<positive|negative>/imageN.png.",
        ),
        (
            "image_path_unique",
            "ExpectColumnValuesToBeUnique",
            "Each image is listed once (a repeated CSV line would weight it twice).",
            {"column": "image_path"},
        ),
        _regex("patient_id_pattern", "patient_id", r"^\d{5}$", "Patient id has 5 digits."),
        _regex(
            "study_id_pattern",
            "study_id",
            r"^XR_[A-Z]+/patient\d{5}/study\d+$",
            "Study id is XR_<PART>/patientNNNNN/studyN.",
        ),
        _in_set(
            "path_matches_fields",
            "path_matches_fields",
            [True],
            "Split, body part, patient, study and image index agree with the image path.",
        ),
        _in_set(
            "image_listed_in_csv",
            "listed",
            [True],
            "Every image on disk is listed in <split>_image_paths.csv.",
        ),
    ]


def _label_specs() -> list[Spec]:
    return [
        _in_set(
            "study_labeled_in_csv",
            "csv_label",
            (0, 1),
            "Every image's study has a label in <split>_labeled_studies.csv.",
        ),
        (
            "label_matches_folder",
            "ExpectColumnPairValuesToBeEqual",
            "The study label agrees with the folder suffix (_positive = 1, _negative = 0).",
            {"column_A": "label", "column_B": "folder_label"},
        ),
        (
            "label_matches_csv",
            "ExpectColumnPairValuesToBeEqual",
            "The study label is the labeled_studies CSV label wherever the CSV has the study.",
            {
                "column_A": "label",
                "column_B": "csv_label",
                "row_condition": "csv_label != -1",
                "condition_parser": "pandas",
            },
        ),
        _in_set(
            "patient_in_one_split",
            "patient_in_one_split",
            [True],
            "No patient appears in more than one of train, holdout and valid (no leakage).",
        ),
    ]


def _count_specs(params: dict) -> list[Spec]:
    rows, ratio = params["row_count"], params["abnormal_ratio"]
    return [
        (
            "row_count",
            "ExpectTableRowCountToBeBetween",
            f"The manifest has {rows['min']}..{rows['max']} images.",
            {"min_value": rows["min"], "max_value": rows["max"]},
        ),
        _between(
            "abnormal_ratio_per_part",
            "part_abnormal_ratio",
            ratio["min"],
            ratio["max"],
            f"Each body part with at least {ratio['min_images']} images has {ratio['min']}..{ratio['max']} "
            "abnormal images (value = the part's ratio).",
        ),
    ]


def _image_specs(params: dict) -> list[Spec]:
    image = params["image"]
    return [
        _in_set("image_file_exists", "image_exists", [True], "Every listed image file exists on disk."),
        _between(
            "image_not_empty",
            "image_bytes",
            image["min_file_bytes"],
            None,
            f"Image files have at least {image['min_file_bytes']} bytes.",
        ),
        _in_set("image_decodes", "image_decodes", [True], "Every image decodes fully (no truncated data)."),
        _between(
            "image_width",
            "image_width",
            image["min_width"],
            image["max_width"],
            f"Decoded width is {image['min_width']}..{image['max_width']} px.",
        ),
        _between(
            "image_height",
            "image_height",
            image["min_height"],
            image["max_height"],
            f"Decoded height is {image['min_height']}..{image['max_height']} px.",
        ),
        _in_set(
            "image_mode",
            "image_mode",
            image["allowed_modes"],
            f"Pixel mode is one of {', '.join(image['allowed_modes'])}.",
        ),
        _between(
            "image_not_constant",
            "image_pixel_range",
            image["min_pixel_range"],
            None,
            f"Pixel values span at least {image['min_pixel_range']} grey level(s) (not a blank image).",
        ),
    ]


def study_rule_specs() -> list[Spec]:
    """Rules over the studies frame (one row per study in the labeled_studies CSVs or the manifest)."""
    return [
        _regex(
            "study_path_pattern",
            "study_path",
            STUDY_PATH_REGEX,
            "Study path is MURA-v1.1/<split>/XR_<PART>/patientNNNNN/studyN_<positive|negative>/.",
        ),
        _between("study_has_images", "images", 1, None, "Every labeled study has at least one image."),
        _in_set("study_label_consistent", "labels", [1], "All images of a study carry one study label."),
        _between(
            "study_listed_once_in_csv",
            "csv_entries",
            0,
            1,
            "A study appears at most once in the labeled_studies CSVs.",
        ),
    ]


def rule_specs(params: dict) -> list[Spec]:
    """(rule, GX expectation class name, description, arguments) of every rule, in suite order."""
    return [
        *_schema_specs(),
        *_domain_specs(params),
        *_label_specs(),
        *_count_specs(params),
        *_image_specs(params),
    ]


def build_expectations(params: dict, specs: list[Spec] | None = None) -> list:
    """GX expectations of `specs` (default: the image rules built from params.yaml's `validation`)."""
    import great_expectations as gx

    return [
        getattr(gx.expectations, class_name)(meta={"rule": rule}, description=description, **arguments)
        for rule, class_name, description, arguments in (rule_specs(params) if specs is None else specs)
    ]


def rule_of(expectation_config) -> str:
    """The rule name of an expectation (its `meta.rule`, else its GX type)."""
    meta = expectation_config.meta or {}
    return meta.get("rule") or expectation_config.type
