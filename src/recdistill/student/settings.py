"""The settings the student's parts take, as plain dataclasses: the ``student`` group (which model and its
values), the ranking evaluation the LightningModule runs (part of the ``eval`` group) and embedding
distillation's item table (``distill.ed``, here because the loader of distilled students rebuilds it).

The recipes read the config into them (``recipes/student_settings.py``); they have no defaults of their own
(those live in ``config/conf/``). ``to_dict`` is what a checkpoint saves and ``from_dict`` reads it back;
both use the config group's own shape, so a checkpoint written before these classes existed is read by the
same ``from_dict`` from the config it saved (``student/checkpoint.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from recdistill.errors import ConfigError

# The student group's keys every sequential student has (the data module and the losses read them); the
# rest of the group is the chosen model's own, read by its settings class (student/registry.py).
SHARED_KEYS = ("max_len", "loss", "num_negatives", "negatives_from_history")


@dataclass(frozen=True)
class StudentSettings:
    """``name``: the ``student`` group's option (``student=sasrec``), a key of ``student/registry.py``'s
    ``students()``; ``model``: that student's own settings (for sasrec a ``SASRecSettings``)."""

    name: str
    max_len: int
    loss: str
    num_negatives: int
    negatives_from_history: bool
    model: object

    def to_dict(self) -> dict:
        """The group's values as in its YAML file, plus ``name``."""
        return {"name": self.name, **{key: getattr(self, key) for key in SHARED_KEYS}, **self.model.to_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> "StudentSettings":
        """From :meth:`to_dict`'s shape: ``name`` and the group's values. An unknown ``name`` is a
        ``ConfigError`` listing the known students; the model's own values are checked by its settings class."""
        from recdistill.student.registry import student_model  # the registry imports the models

        values = dict(values)
        name = str(values.pop("name"))
        missing = [key for key in SHARED_KEYS if key not in values]
        if missing:
            raise ConfigError(f"the student group has no {', '.join('student.' + k for k in missing)}")
        shared = {key: values.pop(key) for key in SHARED_KEYS}
        model_settings = student_model(name).settings
        own = {f.name for f in fields(model_settings)}
        if set(values) != own:
            unknown, missing = sorted(set(values) - own), sorted(own - set(values))
            raise ConfigError(f"student={name} " + "; ".join(
                part for part in (f"does not take {', '.join('student.' + k for k in unknown)}" if unknown else "",
                                  f"needs {', '.join('student.' + k for k in missing)}" if missing else "") if part)
                + f" (its keys: config/conf/student/{name}.yaml)")
        return cls(name=name, max_len=int(shared["max_len"]), loss=str(shared["loss"]),
                   num_negatives=int(shared["num_negatives"]),
                   negatives_from_history=bool(shared["negatives_from_history"]),
                   model=model_settings.from_dict(values))


@dataclass(frozen=True)
class RankingEvalSettings:
    """What the student's evaluation reads from the ``eval`` group (``config/conf/eval/default.yaml``)."""

    ks: tuple[int, ...]
    exclude_seen: bool
    sampled_negatives: int

    def to_dict(self) -> dict:
        return {"ks": list(self.ks), "exclude_seen": self.exclude_seen, "sampled_negatives": self.sampled_negatives}

    @classmethod
    def from_dict(cls, values: dict) -> "RankingEvalSettings":
        return cls(ks=tuple(int(k) for k in values["ks"]), exclude_seen=bool(values["exclude_seen"]),
                   sampled_negatives=int(values["sampled_negatives"]))


@dataclass(frozen=True)
class EmbeddingDistillSettings:
    """``distill.ed`` (``config/conf/distill/dllm2rec.yaml``): how the LLM item embeddings join the student's
    item table (:class:`~recdistill.student.distilled.DistilledSASRec`)."""

    gamma: float
    mlp_layers: int
    mlp_hidden: int
    normalize: str
    id_dropout: float
    tie: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "EmbeddingDistillSettings":
        return cls(gamma=float(values["gamma"]), mlp_layers=int(values["mlp_layers"]),
                   mlp_hidden=int(values["mlp_hidden"]), normalize=str(values["normalize"]),
                   id_dropout=float(values["id_dropout"]), tie=str(values["tie"]))
