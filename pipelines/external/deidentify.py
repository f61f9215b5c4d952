"""De-identification of a site's radiographs before anything of them is kept: DICOM PS3.15's Basic
Application Level Confidentiality Profile as `dicognito` implements it (names, IDs, dates, UIDs,
addresses replaced; pixel data kept), then a check that no original identifier is left in any text
element. Pixel data stays as it is, so an image whose pixels may show identifiers (BurnedInAnnotation
YES) is refused, never "cleaned"."""

from __future__ import annotations

from importlib.metadata import version

from pipelines.dicom import DicomImageError

# Values that name the patient or the visit: none may survive in any element after the profile.
IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs")
# Free text and names; UIDs (UI) and numbers are left out: they are replaced or cannot hold a name, and a
# short numeric ID would match inside them by chance.
TEXT_VRS = {"AE", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UT"}
PROFILE_CODE = "113100"  # DCM: Basic Application Confidentiality Profile
SHORTEST_CHECKED = 4  # shorter values (a sex, an initial) occur in any text by chance


class BurnedInAnnotation(DicomImageError):
    """The image says its pixels may show identifiers: the profile keeps pixels, so it is refused."""


def _original_values(dataset) -> set[str]:
    from pydicom.multival import MultiValue

    values: set[str] = set()
    for keyword in IDENTIFYING:
        value = dataset.get(keyword)
        items = list(value) if isinstance(value, MultiValue) else [value]
        values |= {str(item).strip() for item in items if item is not None}
    return {value for value in values if len(value) >= SHORTEST_CHECKED}


def _left_over(dataset, originals: set[str]) -> list[str]:
    """Keywords of text elements (at any depth) that still hold an original identifier as a whole
    token (not as the digits inside a longer number)."""
    import re

    if not originals:
        return []
    alternatives = "|".join(re.escape(value) for value in sorted(originals, key=len, reverse=True))
    pattern = re.compile(f"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")
    found = []
    for element in dataset.iterall():
        if element.VR not in TEXT_VRS or element.value in (None, ""):
            continue
        if pattern.search(str(element.value)):
            found.append(element.keyword or str(element.tag))
    return found


def _profile_code():
    """The coded name of the profile applied (PS3.16 CID 7050, DCM 113100)."""
    from pydicom.dataset import Dataset

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = PROFILE_CODE, "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    return code


class Deidentifier:
    """One import's de-identifier: the same original identifier gets the same replacement within it."""

    def __init__(self) -> None:
        from dicognito.anonymizer import Anonymizer

        self._anonymizer = Anonymizer()  # a fresh random seed: replacements cannot be recomputed
        self.method = f"DICOM PS3.15 Basic Profile (dicognito {version('dicognito')})"  # LO: 64 characters

    def __call__(self, dataset, name: str):
        """`dataset` de-identified in place (and returned); BurnedInAnnotation or DicomImageError
        (the message names `name`, never a value of the file) when it cannot be."""
        if str(dataset.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
            raise BurnedInAnnotation(
                f"{name}: BurnedInAnnotation YES: its pixels may show identifiers, which de-identification "
                "keeps; export the image without burned-in text (or with the annotation masked) and import again"
            )
        originals = _original_values(dataset)
        try:
            self._anonymizer.anonymize(dataset)
        except Exception as error:  # noqa: BLE001 - dicognito raises what its parsers raise
            # Its messages quote the value it could not parse (a birth date): only the kind goes on.
            raise DicomImageError(
                f"{name}: de-identification failed ({type(error).__name__} on a malformed element, "
                "e.g. a date not written YYYYMMDD); correct the element at the site and import again"
            ) from None
        dataset.PatientIdentityRemoved = "YES"
        dataset.DeidentificationMethod = self.method
        dataset.DeidentificationMethodCodeSequence = [_profile_code()]
        left = _left_over(dataset, originals)
        if left:
            raise DicomImageError(
                f"{name}: an identifier of the patient is still in {', '.join(sorted(set(left)))} after "
                "de-identification; the image is refused"
            )
        return dataset
