"""Builder functions for the teacher's parts, from plain settings. Shared by training, evaluation, export,
tests and benchmarks, so every path builds the model the same way (which is what makes adapters load back).
The recipe (``recipes/teacher.py``) turns the config into these arguments."""

from __future__ import annotations

from pathlib import Path

from recdistill.data.prepared import PreparedData
from recdistill.teacher.llm import LLMSettings, LoadedLLM, load_llm
from recdistill.teacher.model import ILoRATeacher, TeacherSpec
from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates, published_title


def build_teacher(llm: LLMSettings | dict, spec: TeacherSpec, student, cache: str, tokenizer=None,
                  uniform_dropout: bool = True) -> tuple[ILoRATeacher, LoadedLLM]:
    """The LLM with its adapters. ``llm``: :class:`LLMSettings` or the same as a dict (an adapter's saved
    ``llm``). ``uniform_dropout`` is ``efficiency.uniform_dropout`` (iLoRA mode; plain LoRA keeps PEFT's
    dropout)."""
    settings = llm if isinstance(llm, LLMSettings) else LLMSettings.from_dict(llm)
    loaded = load_llm(settings, cache, tokenizer=tokenizer)
    teacher = ILoRATeacher(loaded.model, student, spec, quantized=loaded.quantization != "none",
                           gradient_checkpointing=bool(settings.gradient_checkpointing), uniform_dropout=uniform_dropout)
    return teacher, loaded


def build_encoder(tokenizer, data: PreparedData, template_file: str | Path | None,
                  candidates: str = "titles", tokenize: str = "pieces", rewrite_titles: bool = False,
                  answer_form: str = "eos") -> PromptEncoder:
    """The prompt encoder over the dataset's titles with the templates of ``template_file`` (None: the
    package's; their history-only versions for ``candidates="none"``). ``candidates``: how prompts list
    the candidates (``teacher.prompt.candidates``: titles | tokens | none); ``tokenize``: pieces | whole_string
    (``teacher.prompt.tokenize``); ``rewrite_titles``: "Matrix, The" written "The Matrix" as LLaRA / iLoRA
    do (``teacher.prompt.rewrite_titles``; prompts, answers and the parsing of answers all use these titles);
    ``answer_form``: eos | published (``teacher.prompt.answer_form``)."""
    titles = [published_title(t) for t in data.titles] if rewrite_titles else data.titles
    return PromptEncoder(tokenizer, titles, load_templates(template_file, candidates), candidates, tokenize,
                         answer_form)
