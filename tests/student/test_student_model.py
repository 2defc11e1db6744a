"""SASRec: causality, padding, gradient checkpointing, the item-embedding API."""

import torch

from recdistill.student.sasrec import SASRec


def _model(**kw):
    torch.manual_seed(0)
    model = SASRec(num_items=30, max_len=10, hidden_size=16, num_blocks=2, num_heads=2, dropout=0.3, **kw)
    return model.eval()


def test_output_at_t_ignores_items_after_t():
    for norm_first in (True, False):
        model = _model(norm_first=norm_first)
        seq = torch.tensor([[0, 0, 3, 7, 1, 9, 4, 2, 8, 5]])
        changed = seq.clone()
        changed[0, 6:] = torch.tensor([11, 12, 13, 14])
        a, b = model.encode(seq), model.encode(changed)
        torch.testing.assert_close(a[:, :6], b[:, :6])
        assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_padding_does_not_change_outputs_and_padded_positions_are_zero():
    model = _model()
    history = torch.tensor([3, 7, 1, 9])
    padded_to_10 = torch.cat([torch.zeros(6, dtype=torch.long), history]).unsqueeze(0)
    padded_to_5 = torch.cat([torch.zeros(1, dtype=torch.long), history]).unsqueeze(0)
    out10, out5 = model.encode(padded_to_10), model.encode(padded_to_5)
    torch.testing.assert_close(out10[:, -4:], out5[:, -4:])
    assert torch.all(out10[:, :6] == 0)
    # a row's output does not depend on the other rows of its batch
    other = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14]])
    batch = model.user_representation(torch.cat([padded_to_10, other]))
    torch.testing.assert_close(batch[0], model.user_representation(padded_to_10)[0])


def test_score_all_masks_padding_and_uses_item_embeddings():
    model = _model()
    hidden = model.user_representation(torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]))
    scores = model.score_all(hidden)
    assert scores.shape == (1, 31) and scores[0, 0] == float("-inf")
    ids = torch.tensor([[4, 9]])
    torch.testing.assert_close(model.score_items(hidden, ids), scores[:, [4, 9]])
    assert model.all_item_embeddings().shape == (31, 16)


def test_gradient_checkpointing_recomputes_each_block_in_backward():
    torch.manual_seed(0)
    model = SASRec(num_items=30, max_len=10, hidden_size=16, num_blocks=2, num_heads=2, dropout=0.0).train()
    calls = []
    for block in model.blocks:  # a pre-hook: recomputation may stop early, before forward returns
        block.register_forward_pre_hook(lambda *_: calls.append(1))
    seq = torch.randint(1, 31, (4, 10))
    params = list(model.parameters())
    plain = torch.autograd.grad(model.encode(seq).square().sum(), params)
    assert len(calls) == 2
    calls.clear()
    model.gradient_checkpointing = True
    checkpointed = torch.autograd.grad(model.encode(seq).square().sum(), params)
    assert len(calls) == 4  # each block's forward runs again during backward
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b)
