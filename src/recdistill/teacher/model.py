"""The iLoRA teacher as a plain ``nn.Module``: a frozen LLM with LoRA (gated experts or plain), a frozen
student, and the trained projector and gate.

Placeholder slots (``item_slots > 0``) get the projected student embedding of their item in place of
the token embedding, through ``inputs_embeds``: the LLM's code is not changed. The curriculum's text-only
slots (``TEXT_ONLY_SLOT``) keep the pad token's embedding, or a fixed row given by :meth:`use_text_only_row`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recdistill.errors import ConfigError
from recdistill.teacher.bridge import Projector
from recdistill.teacher.molora import GateState, MoLoRAConfig, inject_molora
from recdistill.teacher.molora.gate import GATES, build_gate

MODES = ("ilora", "lora")
TEXT_ONLY_SLOT = -1  # an item slot of a text-only prompt (LLaRA's [PH]): no item embedding goes there


@dataclass
class TeacherSpec:
    """What is needed to rebuild the trained parts on a fresh base (saved with every adapter).

    Built from the ``teacher`` group by ``recipes.teacher_settings.teacher_spec`` (the defaults are the YAML's).
    ``gate``: ``linear`` or ``conv`` (iLoRA's router). ``gate_window``: the gate reads the student's state
    over the last N items of the history (iLoRA: 10, the prompt's window); None = the student's max_len.
    Adapters saved before these existed load as ``linear`` over the student's max_len, as they were trained."""

    mode: str
    lora: MoLoRAConfig
    gate: str
    gate_window: int | None

    def __post_init__(self):
        if self.gate not in GATES:
            raise ConfigError(f"teacher.gate={self.gate!r} is not valid; choose one of: {', '.join(GATES)}")
        if self.gate_window is not None and int(self.gate_window) < 1:
            raise ConfigError(f"teacher.gate_window={self.gate_window} is not valid; expected >= 1 or null")

    def to_dict(self) -> dict:
        return {"mode": self.mode, "lora": self.lora.to_dict(), "gate": self.gate, "gate_window": self.gate_window}

    @classmethod
    def from_dict(cls, d: dict) -> "TeacherSpec":
        lora = dict(d["lora"])
        # What adapters saved before these settings existed were trained with: alpha / r, every layer,
        # a linear gate over the student's max_len.
        lora.setdefault("scaling_rule", "standard")
        lora.setdefault("top_layers", None)
        return cls(d["mode"], MoLoRAConfig(**lora), d.get("gate", "linear"), d.get("gate_window"))


def _plain_lora(llm: nn.Module, cfg: MoLoRAConfig) -> nn.Module:
    """Plain LoRA (LLaRA) is exactly what PEFT's LoRA does, so PEFT does it."""
    from peft import LoraConfig, get_peft_model

    layers = None
    if cfg.top_layers is not None:
        from recdistill.teacher.molora.model import top_layer_indices

        layers = sorted(top_layer_indices([name for name, _ in llm.named_modules()], cfg.top_layers))
    peft_cfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, layers_to_transform=layers,
                          target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(llm, peft_cfg)
    except ValueError as exc:  # PEFT's "Target modules ... not found"
        raise ConfigError(f"teacher.lora.target_modules: {exc}") from exc


class ILoRATeacher(nn.Module):
    def __init__(self, llm: nn.Module, student: nn.Module, spec: TeacherSpec, quantized: bool = False,
                 gradient_checkpointing: bool = False, uniform_dropout: bool = True):
        super().__init__()
        if spec.mode not in MODES:
            raise ConfigError(f"teacher.mode={spec.mode!r} is not valid; choose one of: {', '.join(MODES)}")
        self.spec = spec
        student.requires_grad_(False)
        student.eval()
        llm.requires_grad_(False)
        if quantized:
            # PEFT's recipe for k-bit bases: norms in fp32, input grads on (needed with checkpointing).
            from peft import prepare_model_for_kbit_training

            llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=gradient_checkpointing,
                                                  gradient_checkpointing_kwargs={"use_reentrant": False})
        self.gate_state: GateState | None = None
        if spec.mode == "ilora":
            self.gate_state = GateState(spec.lora.num_experts)
            inject_molora(llm, spec.lora, self.gate_state, uniform_dropout)
        else:
            llm = _plain_lora(llm, spec.lora)
        self.llm = llm
        self.student = student
        llm_size = self.base_config.hidden_size
        self.projector = Projector(student.hidden_size, llm_size)
        self.gate = build_gate(spec.gate, student.hidden_size, spec.lora.num_experts) if spec.mode == "ilora" else None
        device = self.embedding_layer.weight.device
        self.projector.to(device)
        if spec.lora.top_layers is not None:
            # Adapters in the top layers only: the projector feeds the first layer, so training it would need
            # the full backward that top_layers exists to avoid. It stays at its (seeded) initialisation.
            self.projector.requires_grad_(False)
        if self.gate is not None:
            self.gate.to(device)
        self.text_only_row: torch.Tensor | None = None

    def use_text_only_row(self, row: torch.Tensor | None) -> None:
        """What text-only slots show: ``row`` (``[hidden]``, never trained, never saved: the curriculum draws
        it again from its seed) or, with None, the pad token's embedding."""
        self.text_only_row = None if row is None else row.to(self.embedding_layer.weight.device)

    # -- structure ------------------------------------------------------------------------------------
    @property
    def base_config(self):
        return self.llm.config

    @property
    def embedding_layer(self) -> nn.Embedding:
        return self.llm.get_input_embeddings()

    def train(self, mode: bool = True):
        super().train(mode)
        self.student.eval()  # frozen: its dropout must stay off
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Exactly the trained tensors (experts / LoRA, projector, gate, and the conv gate's batch-norm
        statistics, which are learnt in training though not parameters); never a base weight."""
        out = {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}
        out.update({name: b.detach() for name, b in self.gate_buffers().items()})
        return out

    def gate_buffers(self) -> dict[str, torch.Tensor]:
        if self.gate is None:
            return {}
        return {f"gate.{name}": b for name, b in self.gate.named_buffers()}

    # -- inputs ---------------------------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, item_slots: torch.Tensor) -> torch.Tensor:
        """Token embeddings with every placeholder slot replaced by its projected item embedding."""
        embeds = self.embedding_layer(input_ids)
        if self.text_only_row is not None:  # a where, not a branch on .any(): no host sync per step on a GPU
            embeds = torch.where((item_slots == TEXT_ONLY_SLOT)[..., None], self.text_only_row.to(embeds.dtype), embeds)
        mask = item_slots > 0
        if mask.any():
            with torch.no_grad():
                item_emb = self.student.embed_items(item_slots[mask])
            projected = self.projector(item_emb.to(self.projector.net[0].weight.dtype))
            embeds = embeds.clone()
            embeds[mask] = projected.to(embeds.dtype)
        return embeds

    def expert_weights(self, student_seq: torch.Tensor) -> torch.Tensor | None:
        """The gate's softmax over experts for each sample ``[B, K]`` (None in plain LoRA mode)."""
        if self.gate is None:
            return None
        if self.spec.gate_window is not None:
            student_seq = student_seq[:, -int(self.spec.gate_window):]  # left-padded: the newest items are last
        with torch.no_grad():
            user = self.student.user_representation(student_seq)
        return self.gate(user.to(self.gate.linear.weight.dtype))

    def set_gate(self, weights: torch.Tensor | None) -> None:
        if self.gate_state is not None:
            self.gate_state.set(weights)

    # -- forward --------------------------------------------------------------------------------------
    def forward(self, input_ids, attention_mask, item_slots, student_seq, labels=None, position_ids=None,
                past_key_values=None, use_cache: bool = False, gate_weights: torch.Tensor | None = None,
                logits_to_keep: int = 0):
        """Returns the LLM's ``CausalLMOutputWithPast``. ``logits_to_keep=n`` computes logits for the last n
        positions only (0 = all). Padding may be on the left: positions are counted from the mask.

        With ``labels`` (-100 except answer tokens, batches left-padded so answers end at the last
        column), logits are computed for the answer span only and ``loss`` is the mean cross-entropy
        over answer tokens."""
        if self.gate is not None:
            self.set_gate(gate_weights if gate_weights is not None else self.expert_weights(student_seq))
        embeds = self.embed(input_ids, item_slots)
        if position_ids is None and past_key_values is None:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        if labels is not None:
            answer_cols = labels.ne(-100).any(0).nonzero()
            span = int(labels.shape[1] - answer_cols.min()) + 1 if len(answer_cols) else 1
            logits_to_keep = min(span, labels.shape[1])
        out = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                       past_key_values=past_key_values, use_cache=use_cache, logits_to_keep=logits_to_keep)
        if labels is not None:
            out.loss = answer_loss(out.logits, labels)
        return out


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over label positions != -100; ``logits`` cover the last
    ``logits.shape[1]`` columns of ``labels``."""
    keep = logits.shape[1]
    targets = labels[:, -keep + 1:] if keep > 1 else labels[:, :0]
    return torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                             targets.reshape(-1), ignore_index=-100)
