"""External validation: a site's own labelled DICOM studies, de-identified and versioned, and how a
registered model does on them (`mura external`, DAG mura_external_validation)."""
