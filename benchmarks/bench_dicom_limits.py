"""Memory of a decompression bomb: a deflated 6000 x 6000 DICOM radiograph of zeros (about 70 KB on
disk) read through the one pixel path, refused by params.yaml pacs.max_image_pixels, against the same
file decoded with the limit raised (the baseline, same run). Each case runs in a fresh process;
its peak resident memory (ru_maxrss) is reported, `--repeats` times, median and range.

    python benchmarks/bench_dicom_limits.py --out benchmarks/results [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASE = """
import resource, sys
from pipelines.dicom.pixels import DicomImageError, grey_pixels, read_dicom
limit = int(sys.argv[2])
try:
    grey_pixels(read_dicom(__import__("pathlib").Path(sys.argv[1])), "bomb.dcm", max_pixels=limit)
    outcome = "decoded"
except DicomImageError as error:
    outcome = "refused"
print(outcome, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_bomb(path: Path, side: int = 6000) -> int:
    """A deflated MONOCHROME2 radiograph of zeros, `side` x `side` 16-bit; its size in bytes."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.Modality, dataset.BodyPartExamined = "CR", "HAND"
    dataset.Rows = dataset.Columns = side
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
    dataset.PixelData = np.zeros((side, side), np.uint16).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path.stat().st_size


def run(path: Path, limit: int) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", CASE, str(path), str(limit)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    outcome, kilobytes = done.stdout.split()
    return outcome, int(kilobytes) * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mura_core.config import load_config

    limit = load_config(ROOT / "params.yaml").pacs.max_image_pixels
    with tempfile.TemporaryDirectory() as scratch:
        bomb = Path(scratch) / "bomb.dcm"
        size = write_bomb(bomb)
        cases = {"refused_by_the_limit": limit, "decoded_limit_raised": 10**9}
        peaks = {name: [run(bomb, value) for _ in range(args.repeats)] for name, value in cases.items()}
    report = {
        "benchmark": "dicom_limits",
        "file_bytes": size,
        "declared_pixels": 6000 * 6000,
        "limit_pixels": limit,
        **{
            name: {
                "outcome": runs[0][0],
                "peak_rss_mib_median": statistics.median(rss for _, rss in runs) / 2**20,
                "peak_rss_mib_range": [
                    min(rss for _, rss in runs) / 2**20,
                    max(rss for _, rss in runs) / 2**20,
                ],
                "runs": len(runs),
            }
            for name, runs in peaks.items()
        },
    }
    report["ratio_refused_to_decoded"] = (
        report["refused_by_the_limit"]["peak_rss_mib_median"]
        / report["decoded_limit_raised"]["peak_rss_mib_median"]
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "dicom_limits.json").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
