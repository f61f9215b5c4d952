"""The research PACS: Orthanc as the embedded stack runs it, and a DICOMweb client of any PACS."""
