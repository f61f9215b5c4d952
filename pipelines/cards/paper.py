"""The MURA paper's reference numbers, for side-by-side reading on model cards.

Rajpurkar, Irvin et al., "MURA: Large Dataset for Abnormality Detection in Musculoskeletal
Radiographs", arXiv:1712.06957 (v4): Cohen's kappa with 95 % intervals of each of three radiologists
and of the DenseNet-169 model against the majority vote of three other radiologists, on the paper's
207-study test set. That test set is not public: a version evaluated on MURA valid (or on synthetic
data) is read *beside* these numbers, not against them.
"""

from __future__ import annotations

PAPER = "Rajpurkar et al. 2017, MURA (arXiv:1712.06957), test set of 207 studies"
READERS = ("Radiologist 1", "Radiologist 2", "Radiologist 3", "Paper model")
# study type -> reader -> (kappa, low, high)
KAPPA = {
    "Elbow": ((0.850, 0.830, 0.871), (0.710, 0.674, 0.745), (0.719, 0.685, 0.752), (0.710, 0.674, 0.745)),
    "Finger": ((0.304, 0.249, 0.358), (0.403, 0.339, 0.467), (0.410, 0.358, 0.463), (0.389, 0.332, 0.446)),
    "Forearm": ((0.796, 0.772, 0.821), (0.802, 0.779, 0.825), (0.798, 0.774, 0.822), (0.737, 0.707, 0.766)),
    "Hand": ((0.661, 0.623, 0.698), (0.927, 0.917, 0.937), (0.789, 0.762, 0.815), (0.851, 0.830, 0.871)),
    "Humerus": ((0.867, 0.850, 0.883), (0.733, 0.703, 0.764), (0.933, 0.925, 0.942), (0.600, 0.558, 0.642)),
    "Shoulder": ((0.864, 0.847, 0.881), (0.791, 0.765, 0.816), (0.864, 0.847, 0.881), (0.729, 0.697, 0.760)),
    "Wrist": ((0.791, 0.766, 0.817), (0.931, 0.922, 0.940), (0.931, 0.922, 0.940), (0.931, 0.922, 0.940)),
    "Overall": ((0.731, 0.726, 0.735), (0.763, 0.759, 0.767), (0.778, 0.774, 0.782), (0.705, 0.700, 0.710)),
}
MODEL_AUROC = 0.929  # the paper's model, all study types (no per-type AUROC is reported)
MODEL_OPERATING_POINT = {"sensitivity": 0.815, "specificity": 0.887}
TERMS = (
    "MURA is distributed by the Stanford AIMI Center under its research use agreement: non-commercial "
    "research only, no redistribution of the images, no attempt to identify patients, and citation of "
    "the paper in any publication (https://stanfordmlgroup.github.io/competitions/mura/)."
)
