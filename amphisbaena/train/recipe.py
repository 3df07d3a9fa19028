"""The training recipe: every knob that decides the shipped model, with its default."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from amphisbaena.train.model import ModelConfig


@dataclass
class Recipe:
    """Defaults are the recipe of the full-size teacher (docs/accuracy.md); the shipped students lay
    their recipe files over it (docs/model-size.md)."""

    dataset: str = "mnist"
    seed: int = 0
    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    # Held-out training digits; validation is a full assignment over this pool. Recipes were chosen with
    # 5,000 held out (docs/accuracy.md); the teacher then trained on all but 500.
    val_size: int = 500
    limit: int | None = None  # use only the first LIMIT training digits (smoke runs)
    hard_start_epoch: int = 1  # from this epoch on, batches group digits the model confuses
    hard_group: int = 16  # confusable digits placed together per anchor
    shift: int = 0  # whole-pixel shifts of whole digits before cutting, seen by the learned path only
    rotate: float = 0.0  # random rotation of whole digits before cutting, in degrees (learned path only)
    scale: float = 0.0  # random scaling of whole digits before cutting, as a fraction (learned path only)
    # Training digits of these classes also enter turned a half turn (180 degrees, then one pixel down and right,
    # which keeps the centring and 20-pixel box rules exact): a turned 0, 1 or 8 is another 0, 1 or 8.
    # [0, 1, 8] validated at 92.4% against the default's 92.5-93.0% (docs/experiments.md), so none by default.
    half_turn_classes: list[int] = field(default_factory=list)
    init_from: str | None = None  # start from this checkpoint's weights (a second, shorter cycle)
    # Which training digits are held out: "last" (the last VAL_SIZE) or "writers" (whole QMNIST writers,
    # none of whom wrote a training digit: like the test set, whose writers are new).
    val_pool: str = "last"
    # Knowledge distillation: the fp32 model directory of the teacher (its sha256 recorded beside it), the
    # temperature of the in-batch row and column distributions it teaches, and the weight of that KL term.
    teacher: str | None = None
    teacher_sha256: dict[str, str] | None = None
    distill_temperature: float = 2.0
    distill_weight: float = 1.0
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_dataset(cls, dataset: str) -> Recipe:
        """The default recipe for DATASET. The geometry penalty encodes how MNIST digits were
        made (20-pixel box, centre of mass at 14); Fashion-MNIST images follow no such rule, so
        their recipe weighs it zero (85% of its training digits would break the centring rule)."""
        recipe = cls(dataset=dataset)
        if dataset != "mnist":
            recipe.model.com_weight = recipe.model.box_weight = 0.0
        return recipe

    @classmethod
    def from_dict(cls, values: dict) -> Recipe:
        values = dict(values)
        values["shift"] = int(values.get("shift", 0))
        model = ModelConfig(**values.pop("model", {}))
        return cls(model=model, **values)

    def with_overrides(self, values: dict) -> Recipe:
        """This recipe with VALUES (a partial recipe, "model" a partial ModelConfig) laid over it."""
        merged = self.to_dict()
        model = {**merged.pop("model"), **values.get("model", {})}
        unknown = (set(values) - set(merged) - {"model"}) | (set(model) - set(self.model.to_dict()))
        if unknown:
            raise ValueError(f"unknown recipe fields: {', '.join(sorted(unknown))}")
        merged.update({key: value for key, value in values.items() if key != "model"})
        return Recipe.from_dict({**merged, "model": model})
