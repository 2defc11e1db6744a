"""The teacher's side of ``benchmarks/serving/serving.py``: SmolLM2 + iLoRA scoring the 20 candidates of the
teacher's validation protocol for a few users (KV cache reused), its seconds per user, and both models'
NDCG@10 over exactly those candidates (the student's also over every user, a steadier figure)."""

from __future__ import annotations

import time

import numpy as np
import torch


def _student_ranks(model, data, ds) -> torch.Tensor:
    """The student's 0-based rank of each prompt's target among that prompt's candidates."""
    from recdistill.serve.scorers import pad_histories
    from recdistill.evaluation.candidate_metrics import target_ranks

    n = len(ds)
    cands = [ds.candidates(i) for i in range(n)]
    target_index = torch.as_tensor([int(np.flatnonzero(c == t)[0]) for c, t in zip(cands, ds.samples.targets)])
    padded, _ = pad_histories([data.history("val", int(u)) for u in ds.samples.users], model.max_len)
    with torch.no_grad():
        hidden = model.user_representation(torch.from_numpy(padded))
        scores = model.score_items(hidden, torch.as_tensor(np.stack(cands)))
    return target_ranks(scores, target_index)


def teacher_cost_and_quality(args, data, served_rec) -> dict:
    from omegaconf import OmegaConf

    from recdistill.config import compose
    from recdistill.recipes.teacher import load_trained_teacher, prompt_settings
    from recdistill.recipes.teacher_settings import prompt_encoder
    from recdistill.student.checkpoint import load_student_for
    from recdistill.teacher.build import build_teacher
    from recdistill.teacher.data import PromptCollator, PromptDataset, eval_samples
    from recdistill.evaluation.candidate_metrics import candidate_metrics, target_ranks
    from recdistill.teacher.scoring import score_candidates
    from benchmarks.teacher.teacher_common import cache_dir, linear_gate_spec, llm_config

    start = time.perf_counter()
    if args.teacher_adapter:
        teacher, loaded, saved_teacher, _ = load_trained_teacher(args.teacher_adapter, data, cache_dir())
        prompt = saved_teacher["prompt"]  # the prompts it was trained with
    else:
        student, _ = load_student_for(args.teacher_student or args.student, data)
        teacher, loaded = build_teacher(llm_config("smollm2-135m"), linear_gate_spec(), student,
                                        cache_dir())
        prompt = OmegaConf.to_container(compose("teacher", []).teacher.prompt, resolve=True)
    teacher.eval()
    load_s = time.perf_counter() - start
    encoder = prompt_encoder(loaded.tokenizer, data, prompt)
    settings = prompt_settings(prompt, int(teacher.student.max_len))
    users = data.users()[: args.teacher_users]
    ds = PromptDataset(eval_samples(data, "val", users), encoder, data.num_items, settings, "val", False)
    collate = PromptCollator(encoder.slot_id, settings.student_len, with_prompts=True)
    batches = [collate([ds[i] for i in range(s, min(s + args.teacher_batch, len(ds)))])
               for s in range(0, len(ds), args.teacher_batch)]
    start, cpu = time.perf_counter(), time.process_time()
    scores = torch.cat([score_candidates(teacher, b, encoder.answers, encoder.slot_id, 40)
                        for b in batches])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    target_index = torch.cat([b["target_index"] for b in batches])
    k = settings.num_candidates
    teacher_q = candidate_metrics(target_ranks(scores.float(), target_index), k)
    student_q = candidate_metrics(_student_ranks(served_rec.model, data, ds), k)
    all_ds = PromptDataset(eval_samples(data, "val", data.users()), encoder, data.num_items, settings, "val", False)
    student_all = candidate_metrics(_student_ranks(served_rec.model, data, all_ds), k)
    key = f"cand{k}_ndcg@10"
    return {"llm": "SmolLM2-135M-Instruct (fp32) + iLoRA adapters", "adapter": args.teacher_adapter or "untrained",
            "users": len(ds), "candidates": k, "batch": args.teacher_batch, "load_s": round(load_s, 1),
            "seconds": round(seconds, 2), "seconds_per_user": round(seconds / len(ds), 3),
            "cpu_seconds_per_user": round(cpu_seconds / len(ds), 3),
            "mean_prompt_tokens": round(float(np.mean([int(b["prompt_mask"].sum()) / len(b["prompt_mask"])
                                                       for b in batches])), 1),
            "teacher_" + key: round(teacher_q[key], 4), "student_" + key: round(student_q[key], 4),
            "student_" + key + "_all_users": round(student_all[key], 4), "all_users": len(all_ds),
            "teacher_metrics": teacher_q, "student_metrics_same_users": student_q,
            "student_metrics_all_users": student_all}
