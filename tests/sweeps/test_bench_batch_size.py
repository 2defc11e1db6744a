"""The automatic batch-size search on the CPU: the memory-budget rule, limits, inference, bad settings."""

import dataclasses

import pytest
import torch

from recdistill.config import compose
from recdistill.engine.batch_size import SearchSettings, batch_maker, cpu_budget_mb, search_batch_size, training_step_fn
from recdistill.errors import RecdistillError

WIDTH = 64


def search_settings(**changes) -> SearchSettings:
    """``efficiency.batch_size_search`` of the YAML, with ``changes`` (checked on construction)."""
    return dataclasses.replace(SearchSettings.from_config(compose("student", []).efficiency.batch_size_search), **changes)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(WIDTH, WIDTH), torch.nn.GELU(), torch.nn.Linear(WIDTH, 64))


def _make(n):
    return torch.randn(n, WIDTH)


def _train_step(model):
    # repeat: 64 KB of saved activations per example at little compute, so the budget is reached quickly
    return training_step_fn(model, lambda x: model(x).repeat(1, 256).square().mean(), _make, "cpu")


def test_cpu_answer_is_within_the_budget_and_never_beyond_twice_the_largest_measured():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    from recdistill.engine.memory import current_rss_mb

    budget = current_rss_mb() + 200  # room for a ~100 MB of activations
    result = search_batch_size(_train_step(model), "cpu", search_settings(cpu_memory_mb=budget, start=64,
                                                                         max_batch_size=1 << 16))
    sizes = [t["batch_size"] for t in result.tries]
    assert sizes == [64 * 2**i for i in range(len(sizes))]                # doubling from start
    largest_ok = max(t["batch_size"] for t in result.tries if t["fits"])
    assert largest_ok <= result.batch_size <= 2 * largest_ok
    assert result.batch_size % 8 == 0 and result.budget_mb == pytest.approx(budget, abs=0.1)
    assert all(t["peak_mb"] <= budget * 0.9 for t in result.tries if t["fits"])
    assert "budget" in result.rule and result.kind == "train" and result.device == "cpu"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # lr 0: weights unchanged


def test_limits_margin_and_errors():
    model = _model()
    capped = search_batch_size(_train_step(model), "cpu", search_settings(cpu_memory_mb=1e6, max_batch_size=4096),
                               num_examples=40)
    assert capped.batch_size == 40 and [t["batch_size"] for t in capped.tries] == [8, 16, 32]  # the data has 40
    with pytest.raises(RecdistillError, match="over the CPU budget"):
        search_batch_size(_train_step(model), "cpu", search_settings(cpu_memory_mb=1))
    with pytest.raises(RecdistillError, match="margin"):
        search_batch_size(_train_step(model), "cpu", search_settings(margin=1.5))
    with pytest.raises(RecdistillError, match="start"):
        search_batch_size(_train_step(model), "cpu", search_settings(start=64, max_batch_size=8))
    assert cpu_budget_mb(search_settings(cpu_memory_fraction=0.5)) > 0  # from available memory


def test_inference_search_and_batches_from_a_loader():
    model = _model().eval()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(100, WIDTH)), batch_size=4)
    make = batch_maker(loader)
    assert make(7)[0].shape == (7, WIDTH) and make(300)[0].shape == (300, WIDTH)  # repeats beyond the data
    def forward_only(n: int) -> None:
        with torch.no_grad():
            model(make(n)[0])

    result = search_batch_size(forward_only, "cpu", search_settings(cpu_memory_mb=1e6, max_batch_size=64),
                               kind="inference")
    assert result.kind == "inference" and result.batch_size == 64
