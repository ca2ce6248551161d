"""The paper's published numbers, the bar this project measures itself against (docs/design.md).

Source: Khoi Do, "Diagnostic support of skin lesion classification using CNN and Soft Attention"
(2022); the Sensors 2022 paper by Nguyen, Bui & Do describes the same model. Its accuracies come
from an image-level 90/10 split with ImageNet weights on a Titan V.
"""

#: Table 9, MobileNetV3Large[:240] + SA + metadata (averages over classes).
TABLE9 = {
    "accuracy": 0.86,
    "macro_precision": 0.86,
    "macro_f1": 0.86,
    "macro_sensitivity": 0.86,
    "macro_specificity": 0.95,
    "macro_auc": 0.98,
}

#: Table 5, per-class F1 of MobileNetV3Large + metadata + weighted loss (mean 0.79).
TABLE5_F1 = {
    "akiec": 0.72,
    "bcc": 0.76,
    "bkl": 0.75,
    "df": 0.92,
    "mel": 0.58,
    "nv": 0.92,
    "vasc": 0.92,
}

#: Table 8, accuracy of the MobileNetV3Large cut sweep.
TABLE8_CUT_ACCURACY = {270: 0.71, 266: 0.73, 260: 0.77, 251: 0.79, 246: 0.84, 240: 0.86, 230: 0.84}

#: Table 10: parameters (millions), depth, accuracy, seconds per epoch and seconds per
#: prediction on a Titan V, per backbone (each + SA + metadata).
TABLE10 = {
    "mobilenet_v3_large_240": {"params_m": 5.5, "depth": 118, "accuracy": 0.86,
                               "s_per_epoch": 116, "inference_s": 0.13},
    "densenet201":            {"params_m": 20.2, "depth": 402, "accuracy": 0.89,
                               "s_per_epoch": 1000, "inference_s": 1.16},
    "inception_resnet_v2":    {"params_m": 55.9, "depth": 449, "accuracy": 0.90,
                               "s_per_epoch": 3500, "inference_s": 4.08},
}  # fmt: skip

#: ISIC 2018 task 3 winner's balanced accuracy.
ISIC2018_WINNER_BALANCED_ACCURACY = 0.885
