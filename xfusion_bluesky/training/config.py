"""What a training run is: its stages and options, and the network it starts from.

:class:`TrainConfig` is stored in every checkpoint and in the shipped weights'
model card; :meth:`TrainConfig.from_dict` reads it back, also from runs written
before the HR separation got its one name. :func:`build_model` builds the
method's network (the method registry says which class) and applies the
``init_from`` / ``gate_from`` / ``gate_init_scale`` options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.methods import METHODS, method_spec
from xfusion_bluesky.fusion.model import EDVR, EDVRSTF, EDVRSTFDetail, load_model
from xfusion_bluesky.fusion.model.edvr_stf import SMALL_CONFIG
from xfusion_bluesky.fusion.model.loader import load_network
from xfusion_bluesky.synthetic.scene import XRAY_FAMILIES
from xfusion_bluesky.training.dataset import WindowSampling

__all__ = ["TRAINABLE", "Stage", "TrainConfig", "build_model"]

#: Methods with a network to train, in registry order.
TRAINABLE = tuple(name for name, spec in METHODS.items() if spec.trainable)
#: Window-sampling defaults (the paper's rule) for configs that do not set them.
_SAMPLING = WindowSampling(families=())
#: Config keys of earlier runs: old → new.
_RENAMED = {"max_hr_gap": "max_hr_separation", "far_hr_gap": "far_hr_separation"}


@dataclass(frozen=True)
class Stage:
    """One training stage: which scene families, how long, at what learning rate."""

    name: str
    families: tuple[str, ...]
    iterations: int
    learning_rate: float = 4e-4


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored in its checkpoint).

    Attributes
    ----------
    method : str
        A method with a network (:data:`TRAINABLE`): ``"edvr_stf"`` (LR + HR) or
        ``"edvr"`` (the LR-only baseline).
    model : dict
        Constructor arguments of the network.
    stages : tuple of Stage
        Run in order; each has its own cosine schedule and a fresh Adam.
    batch_size, lr_patch : int
        Windows per step, and LR crop size (HR crops are 4× larger).
    seed : int
        Seed of the training streams (stage k uses ``seed + k``).
    init_from : str, optional
        Weights to start from instead of a random initialisation (a ``.pth`` of
        the same method and size), e.g. to fine-tune longer with a fresh cosine
        cycle — the paper's stage 2 starts this way.
    max_hr_separation : int
        Distance of each HR frame from the reference, in LR frame periods, drawn
        from 1..this (paper: 20;
        :class:`~xfusion_bluesky.training.dataset.WindowSampling`).
    p_far_hr : float
        Share of training windows with one HR frame ``far_hr_separation`` away;
        validation windows keep the paper's 1–20.
    far_hr_separation : (int, int)
        Inclusive range of those far distances, in LR frame periods.
    p_hr_decoy : float
        Share of training windows with one HR frame from another scene
        (:class:`~xfusion_bluesky.training.dataset.WindowSampling`).
    gate_from : str, optional
        Take TSA's two temporal-attention convolutions from these weights (same
        config) instead, e.g. to give a network whose gate sits at zero a gate
        with a positive level again; ``gate_init_scale`` applies after.
    gate_init_scale : float
        Multiply the weights and biases of TSA's two temporal-attention
        convolutions by this at the start, so that the correlation feeding the
        sigmoid gate starts small (scale² of its value) and the gate can learn
        again where a saturated one passes no gradient.
    attention_loss_weight : float
        Weight of :func:`~xfusion_bluesky.training.losses.attention_loss` beside
        the Charbonnier loss (methods with HR frames only; 0: the paper's loss).
    p_hr_at_reference : float
        Share of training windows whose HR frame "before" is at the reference
        instant itself (:class:`~xfusion_bluesky.training.dataset.WindowSampling`;
        0.05 unless set, as every earlier run).
    train_head_only : bool
        ``edvr_stf_detail`` only: train the HR detail head alone, the EDVR-STF
        backbone frozen (from ``init_from``), so no gradient flows through the
        deformable convolutions.
    """

    method: str = "edvr_stf"
    model: dict[str, int] = field(default_factory=lambda: dict(SMALL_CONFIG))
    stages: tuple[Stage, ...] = (
        Stage("pretrain", ("natural",), 400),
        Stage("finetune", XRAY_FAMILIES, 2000),
    )
    batch_size: int = 6
    lr_patch: int = 24
    eta_min: float = 1e-7
    checkpoint_every: int = 50
    validate_every: int = 250
    validation_windows: int = 16
    num_workers: int = 1
    seed: int = 10
    init_from: str | None = None
    max_hr_separation: int = _SAMPLING.max_hr_separation
    p_far_hr: float = 0.0
    far_hr_separation: tuple[int, int] = _SAMPLING.far_hr_separation
    p_hr_decoy: float = 0.0
    gate_from: str | None = None
    gate_init_scale: float = 1.0
    attention_loss_weight: float = 0.0
    p_hr_at_reference: float = _SAMPLING.p_hr_at_reference
    train_head_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain JSON-able data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Return the config :meth:`to_dict` gave as ``data`` (or a card's recipe).

        Keys of earlier runs are read too: ``max_hr_gap`` and ``far_hr_gap``
        under their new names; options a run predates take their defaults,
        which are what such a run used.
        """
        values = {_RENAMED.get(k, k): v for k, v in data.items()}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InvalidInputError(
                f"training config has unknown keys {unknown}: was it written by a "
                "newer version of xfusion-bluesky?"
            )
        if "stages" in values:
            values["stages"] = tuple(
                Stage(**{**s, "families": tuple(s["families"])})
                if isinstance(s, Mapping)
                else s
                for s in values["stages"]
            )
        if "far_hr_separation" in values:
            values["far_hr_separation"] = tuple(values["far_hr_separation"])
        return cls(**values)

    def sampling(self, families: tuple[str, ...], seed: int) -> WindowSampling:
        """Return the window sampling of a stage drawing ``families`` from ``seed``."""
        return WindowSampling(
            families=families,
            lr_patch=self.lr_patch,
            max_hr_separation=self.max_hr_separation,
            p_far_hr=self.p_far_hr,
            far_hr_separation=self.far_hr_separation,
            p_hr_decoy=self.p_hr_decoy,
            p_hr_at_reference=self.p_hr_at_reference,
            seed=seed,
        )

    @property
    def total_iterations(self) -> int:
        """Iterations over all stages."""
        return sum(stage.iterations for stage in self.stages)


def _load(method: str, path: str, option: str) -> EDVR:
    """Return the network in ``path`` for ``method``, naming ``option`` on failure."""
    try:
        network = load_network(method, path).network
    except (InvalidInputError, TypeError) as err:
        raise InvalidInputError(f"{option}={path}: {err}") from err
    if network is None:  # only methods with a network get here
        raise InvalidInputError(f"{option}={path}: method {method!r} has no network")
    return network


def _check_options(config: TrainConfig) -> None:
    """Refuse options no run can use, naming the bad value."""
    spec = method_spec(config.method)
    if not spec.trainable:
        raise InvalidInputError(
            f"method {config.method!r} has no network to train; choose one of "
            f"{', '.join(TRAINABLE)}"
        )
    if config.gate_init_scale <= 0:
        # Zero weights would pin the correlation at 0 with no gradient to leave it.
        raise InvalidInputError(
            f"gate_init_scale must be > 0; got {config.gate_init_scale}"
        )
    if config.attention_loss_weight < 0:
        raise InvalidInputError(
            f"attention_loss_weight must be >= 0; got {config.attention_loss_weight}"
        )
    if config.train_head_only and config.method != "edvr_stf_detail":
        raise InvalidInputError(
            "train_head_only trains the HR detail head of method 'edvr_stf_detail'; "
            f"method {config.method!r} has none"
        )
    if config.train_head_only and not config.init_from:
        raise InvalidInputError(
            "train_head_only freezes the EDVR-STF backbone: give init_from (e.g. "
            "models/edvr_stf_small.pth), or a random backbone stays random"
        )
    config.sampling((), config.seed)  # checks the sampling options by name


def build_model(config: TrainConfig) -> EDVR:
    """Return the network for ``config.method``, initialised from ``config.seed``.

    Raises
    ------
    InvalidInputError
        A method without a network, a bad option, or ``init_from`` /
        ``gate_from`` weights of another method or size.
    """
    _check_options(config)
    network_class = method_spec(config.method).network
    if network_class is None:  # _check_options refused it already
        raise InvalidInputError(f"method {config.method!r} has no network")
    with torch.random.fork_rng():  # same initial weights whatever ran before
        torch.manual_seed(config.seed)
        model = network_class(**config.model)
    if config.init_from and isinstance(model, EDVRSTFDetail):
        _init_detail(model, config.init_from)
    elif config.init_from:
        start = _load(config.method, config.init_from, "init_from")
        if start.config != model.config:
            raise InvalidInputError(
                f"init_from={config.init_from} holds {type(start).__name__}"
                f"({start.config}); the config asks for {type(model).__name__}"
                f"({model.config})"
            )
        # Copies the values: the loader's shared network is left untouched.
        model.load_state_dict(start.state_dict())
    gates = (model.fusion.temporal_attn1, model.fusion.temporal_attn2)
    if config.gate_from:
        donor = _load(config.method, config.gate_from, "gate_from")
        if donor.config != model.config:
            raise InvalidInputError(
                f"gate_from={config.gate_from} holds {donor.config}; the config asks "
                f"for {model.config}"
            )
        donor_gates = (donor.fusion.temporal_attn1, donor.fusion.temporal_attn2)
        for conv, source in zip(gates, donor_gates, strict=True):
            conv.load_state_dict(source.state_dict())
    if config.gate_init_scale != 1.0:
        with torch.no_grad():
            for conv in gates:
                conv.weight.mul_(config.gate_init_scale)
                if conv.bias is not None:
                    conv.bias.mul_(config.gate_init_scale)
    if config.train_head_only and isinstance(model, EDVRSTFDetail):
        model.freeze_backbone()
    return model


def _init_detail(model: EDVRSTFDetail, path: str) -> None:
    """Start ``model`` from an EDVR-STF + HR detail file, or its backbone from EDVR-STF.

    An EDVR-STF file leaves the head as built: zero output, so training starts
    from exactly that EDVR-STF.
    """
    start = load_model(path)
    backbone = {
        k: v
        for k, v in model.config.items()
        if k not in ("detail_feat", "detail_blocks")
    }
    if type(start) is EDVRSTFDetail and start.config == model.config:
        model.load_state_dict(start.state_dict())
    elif type(start) is EDVRSTF and start.config == backbone:
        model.load_backbone(start.state_dict())
    else:
        raise InvalidInputError(
            f"init_from={path} holds {type(start).__name__}({start.config}); "
            f"method 'edvr_stf_detail' starts from EDVRSTF({backbone}) or "
            f"EDVRSTFDetail({model.config})"
        )
