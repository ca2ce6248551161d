"""The run configuration: one typed, documented tree of dataclasses, with presets.

A run is fully described by a :class:`RunConfig`; it is saved as ``config.json`` in the run
directory, and ``--resume`` reads it back. Presets give sensible starting points; command-line
flags override single fields.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from mobile_skin.common.errors import UserError
from mobile_skin.common.fileio import write_json

#: Default per-field metadata dropout (``--metadata-dropout``): 0.5 kept balanced accuracy with
#: full metadata and lost under 3 points with all fields unknown (reports/metadata_dropout.md).
DEFAULT_METADATA_DROPOUT = 0.5


@dataclass
class DataConfig:
    """Where the data is and how it is split and fed.

    Attributes:
        data_dir: root holding the metadata CSV and, anywhere below it, the images.
        csv: metadata CSV; default ``<data_dir>/HAM10000_metadata.csv``.
        image_size: side S of the square model input, in pixels.
        split: ``grouped`` (by lesion_id, stratified by dx; default) or ``paper`` (image-level
            90/10, leaks lesions between train and test).
        val_fraction: share of lesions for validation (grouped split).
        test_fraction: share of lesions (grouped) or images (paper) for testing.
        seed: seed of the split, the shuffle and the augmentation.
        skip_bad_images: drop rows whose image is missing or unreadable, with a warning,
            instead of stopping.
        drop_missing_age: drop rows without an age from training and evaluation, as the paper
            does (the ``paper`` preset). The split is drawn before the drop, so a run with and
            one without it share their test lesions.
        drop_before_split: with ``drop_missing_age``, drop those rows before drawing the split
            instead of after it: the order of runs saved before the split-first order existed
            (a config.json without ``metadata_dropout`` loads with this on), so that
            ``--config`` redraws their split.
        augment: ``none``, ``flip`` (horizontal and vertical), ``flip_rotate`` (flips and
            90-degree rotations) or ``full`` (flip_rotate plus mild zoom and colour jitter).
        metadata_dropout: during training, the probability of each metadata field (age, sex,
            site) being replaced by its unknown value, independently per field and image, so
            the model learns that "unknown" means "no information" (0: never).
        age_missing_indicator: encode an unknown age with a 0/1 indicator feature besides the
            imputed value (the paper's encoding has none).
        max_images: keep at most this many images (stratified), for smoke runs.
    """

    data_dir: str = ""
    csv: str | None = None
    image_size: int = 224
    split: str = "grouped"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42
    skip_bad_images: bool = False
    drop_missing_age: bool = False
    drop_before_split: bool = False
    augment: str = "flip_rotate"
    metadata_dropout: float = DEFAULT_METADATA_DROPOUT
    age_missing_indicator: bool = True
    max_images: int | None = None


@dataclass
class ModelConfig:
    """The network.

    Attributes:
        backbone: registry name (see :data:`mobile_skin.model.network.BACKBONES`).
        cut: MobileNetV3Large keeps ``layers[:cut]`` (the paper's best is 240).
        weights: ``imagenet``, ``none``, or a path to a ``.keras``/``.h5`` file of this model.
        use_metadata: add the patient-metadata branch (age, sex, site).
        attention_heads: K, the number of Soft-Attention heads.
        dropout: dropout rate after the attention pooling.
        metadata_units: width of the metadata Dense layer.
        bn_momentum: BatchNormalization momentum of the backbone; ``None`` keeps the
            application's own (0.999 for MobileNetV3). Set to 0.99 automatically when training
            from scratch (``weights=none``), see docs/design.md.
    """

    backbone: str = "mobilenet_v3_large_240"
    cut: int = 240
    weights: str = "imagenet"
    use_metadata: bool = True
    attention_heads: int = 16
    dropout: float = 0.5
    metadata_units: int = 4096
    bn_momentum: float | None = None


#: Backbone BatchNorm momentum when training from scratch (``--weights none``): the application's
#: 0.999 lets the moving statistics lag far behind a backbone whose weights move fast.
SCRATCH_BN_MOMENTUM = 0.99


@dataclass
class TrainConfig:
    """The optimisation recipe; the defaults are the paper's.

    Attributes:
        epochs: maximum number of epochs.
        batch_size: global batch size (split across replicas under a distribution strategy).
        learning_rate: Adam's initial learning rate.
        adam_epsilon: Adam's epsilon (the paper uses 0.1).
        class_weights: weight the cross-entropy by N / (C * N_c) of the training split.
        calibrate: after training, fit a temperature on the validation split and fold it into
            the model's softmax layer (:mod:`mobile_skin.evaluation.temperature`).
        monitor: the validation quantity that selects the best model and drives early stopping
            and the learning-rate schedule: ``val_accuracy`` (paper) or ``val_balanced_accuracy``.
        patience: EarlyStopping patience in epochs.
        lr_schedule: ``plateau`` (ReduceLROnPlateau, paper) or ``cosine`` (decay to min_lr over
            ``epochs``, for fixed-budget runs).
        lr_factor: ReduceLROnPlateau factor.
        lr_patience: ReduceLROnPlateau patience in epochs.
        min_lr: learning-rate floor.
        steps_per_epoch: cap on training steps per epoch (smoke runs); None = whole split.
        mixed_precision: float16 compute with float32 variables and a float32 softmax output.
        xla: jit-compile the training step.
        strategy: ``auto`` (one device, the GPU if present), ``mirrored`` (all local GPUs,
            or the CPU when there is none, through tf.distribute.MirroredStrategy) or
            ``multi_worker`` (several machines, each told its place by ``TF_CONFIG``, through
            tf.distribute.MultiWorkerMirroredStrategy; :mod:`mobile_skin.training.multi_worker`).
        seed: the training seed (``tf_keras.utils.set_random_seed`` before the datasets and
            the model are made): the initial weights, the dropout masks and, with ``data.seed``,
            the shuffle order and augmentation draws, so that one config trains one model. The
            split depends on ``data.seed`` alone, so runs that differ only here share it. None:
            unseeded, a different model each time (what runs saved before this field did).
    """

    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    adam_epsilon: float = 0.1
    class_weights: bool = True
    calibrate: bool = True
    monitor: str = "val_accuracy"
    patience: int = 25
    lr_schedule: str = "plateau"
    lr_factor: float = 0.2
    lr_patience: int = 5
    min_lr: float = 1e-7
    steps_per_epoch: int | None = None
    mixed_precision: bool = False
    xla: bool = False
    strategy: str = "auto"
    seed: int | None = 0


#: What runs made before these data settings existed did: no metadata dropout, no indicator.
#: Those without ``metadata_dropout`` also dropped rows without an age before drawing the split
#: (``drop_before_split``); the split-first order came with it.
LEGACY_DATA = {"metadata_dropout": 0.0, "age_missing_indicator": False}
#: ... and before calibration existed: raw softmax; before the training seed: unseeded.
LEGACY_TRAIN = {"calibrate": False, "seed": None}


@dataclass
class RunConfig:
    """A whole run: data, model and training, the preset it started from, the command line
    that made it and notes on what was decided automatically."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = "default"
    command: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error.

        Keys a config from an older version lacks take the value that version behaved as
        (:data:`LEGACY_DATA`, :data:`LEGACY_TRAIN`), not today's default, so an old run resumes
        as it started.
        """
        data = d.get("data", {})
        split_first = "metadata_dropout" in data
        try:
            return cls(
                data=DataConfig(**{**LEGACY_DATA, "drop_before_split": not split_first, **data}),
                model=ModelConfig(**d.get("model", {})),
                train=TrainConfig(**{**LEGACY_TRAIN, **d.get("train", {})}),
                preset=d.get("preset", "default"),
                command=d.get("command", ""),
                notes=list(d.get("notes", [])),
            )
        except TypeError as err:
            raise UserError(f"config: {err}") from None

    def save(self, path: str | Path) -> Path:
        """Write as JSON (atomically)."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a config written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: config not found")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: not valid JSON ({err})") from None


#: Quantization-aware fine-tuning of the int8 TFLite export (``export/to_tflite.py --int8``;
#: :func:`mobile_skin.quant.qat.quantize_aware`): epochs and Adam learning rate, distilling the
#: float model (8 epochs: the best of reports/int8.md's recipes within the 0.6x-float speed budget).
#: Here rather than in :mod:`mobile_skin.quant.qat` so ``--help`` answers without TensorFlow.
QAT_EPOCHS = 8
QAT_LEARNING_RATE = 1e-5

#: Named starting points. ``smoke`` runs the whole pipeline on 2 CPU cores in a few minutes.
PRESETS: dict[str, dict] = {
    "default": {},
    # The paper's protocol: image-level 90/10 split (leaks lesions), rows without an age
    # dropped, no missing-age indicator, no metadata dropout.
    "paper": {
        "data": {
            "split": "paper",
            "drop_missing_age": True,
            "age_missing_indicator": False,
            "metadata_dropout": 0.0,
        },
    },
    "smoke": {
        "data": {"image_size": 64, "augment": "flip"},
        "model": {"bn_momentum": 0.9},  # few steps: moving statistics must catch up quickly
        "train": {"epochs": 6, "batch_size": 16, "patience": 5, "lr_patience": 2},
    },
}


def preset(name: str) -> RunConfig:
    """The config of preset ``name``."""
    if name not in PRESETS:
        raise UserError(f"unknown --preset {name!r}; choose from {', '.join(PRESETS)}")
    cfg = RunConfig(preset=name)
    for section, values in PRESETS[name].items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)
    return cfg
