"""The training recipe: every knob that decides the shipped model, with its default."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from amphisbaena.train.model import ModelConfig


@dataclass
class Recipe:
    """Defaults are the recipe of the shipped model (see README, "Retrain")."""

    dataset: str = "mnist"
    seed: int = 0
    epochs: int = 50
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    val_size: int = 5_000  # held-out training digits; validation is a full assignment over this pool
    limit: int | None = None  # use only the first LIMIT training digits (smoke runs)
    hard_start_epoch: int = 1  # from this epoch on, batches group digits the model confuses
    hard_group: int = 16  # confusable digits placed together per anchor
    shift: int = 0  # whole-pixel shifts of whole digits before cutting, seen by the learned path only
    init_from: str | None = None  # start from this checkpoint's weights (a second, shorter cycle)
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Recipe:
        values = dict(values)
        # Recipes from before shift-only augmentation also carry affine settings; only zeros are valid.
        if values.pop("rotate", 0.0) or values.pop("scale", 0.0):
            raise ValueError("affine augmentation is no longer supported")
        values["shift"] = int(values.get("shift", 0))
        model = ModelConfig(**values.pop("model", {}))
        return cls(model=model, **values)
