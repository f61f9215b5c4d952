"""DICOM: the one pixel path from a radiograph to the served model's input, and synthetic studies."""
