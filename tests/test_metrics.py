"""CL metrics on a hand-made accuracy matrix (values worked out by hand in the comments)."""

import pytest

from audio_ticl.benchmark import metrics as M

# R[i][j]: accuracy on task j after training task i; entries above the diagonal are untrained heads.
R = [
    [0.90, 0.50, 0.40],
    [0.70, 0.80, 0.60],
    [0.60, 0.75, 0.95],
]


def test_average_accuracy_is_the_last_row_mean():
    assert M.average_accuracy(R) == pytest.approx((0.60 + 0.75 + 0.95) / 3)


def test_average_accuracy_curve_uses_seen_tasks_only():
    assert M.average_accuracy_curve(R) == pytest.approx([0.90, (0.70 + 0.80) / 2, (0.60 + 0.75 + 0.95) / 3])


def test_forgetting_is_max_over_history_minus_final():
    # task 0: max(0.90, 0.70) - 0.60 = 0.30; task 1: max(0.80) - 0.75 = 0.05 (0.50 above the diagonal ignored)
    assert M.forgetting_per_task(R) == pytest.approx([0.30, 0.05])
    assert M.average_forgetting(R) == pytest.approx(0.175)


def test_forgetting_takes_the_max_not_the_first_value():
    rising_then_falling = [[0.5, 0.5, 0.5], [0.9, 0.8, 0.5], [0.6, 0.8, 0.9]]
    # task 0 peaked after task 1 (0.9), not right after its own training (0.5): forgetting 0.3, not -0.1
    assert M.forgetting_per_task(rising_then_falling)[0] == pytest.approx(0.3)


def test_bwt_is_final_minus_just_trained():
    # (0.60 - 0.90 + 0.75 - 0.80) / 2 = -0.175
    assert M.backward_transfer(R) == pytest.approx(-0.175)


def test_no_forgetting_matrix():
    flat = [[0.8, 0.5], [0.8, 0.9]]
    assert M.average_forgetting(flat) == 0.0
    assert M.backward_transfer(flat) == 0.0


def test_single_task_has_zero_forgetting_and_bwt():
    assert M.average_forgetting([[0.7]]) == 0.0
    assert M.backward_transfer([[0.7]]) == 0.0
    assert M.average_accuracy([[0.7]]) == pytest.approx(0.7)


def test_non_square_matrix_is_rejected():
    with pytest.raises(ValueError, match="square"):
        M.average_accuracy([[0.1, 0.2]])


def test_flop_counter_counts_cpu_attention():
    import torch

    class Attn(torch.nn.Module):
        def forward(self, x, t):
            return torch.nn.functional.scaled_dot_product_attention(x, x, x)

    b, h, n, d = 1, 2, 10, 8
    flops = M.count_flops(Attn(), torch.randn(b, h, n, d), torch.zeros(1, dtype=torch.long))
    assert flops == 2 * (2 * b * h * n * n * d)  # QK^T and AV, a multiply-add counted as 2


def test_flops_of_a_model_whose_module_returns_its_own_parameter():
    """BitFit's offsets are such modules: FlopCounterMode's module tracker failed on them under no_grad."""
    import torch

    from audio_ticl.models import create_model, create_pet

    backbone = create_model("ast_custom", input_frames=32, embed_dim=8, depth=1, num_heads=2, fstride=16, tstride=16)
    create_pet("bitfit").inject(backbone, 0)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, x, t):
            return self.backbone(x, task_id=int(t[0]))

    assert M.count_flops(Net(), torch.randn(1, 32, 128), torch.tensor([0])) > 0
    assert all(p.requires_grad for p in backbone.parameters())  # the flags come back


def test_plasticity_is_the_mean_of_the_diagonal():
    R = [[0.9, 0.5, 0.5], [0.7, 0.8, 0.5], [0.6, 0.7, 1.0]]
    assert M.plasticity(R) == pytest.approx((0.9 + 0.8 + 1.0) / 3)
