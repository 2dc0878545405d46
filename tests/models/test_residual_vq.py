"""EMA residual VQ: k-means init, EMA codebook updates, dead-code replacement, quantizer dropout, and
codebooks that stay identical across DDP ranks."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from stable_audio_ops.models.residual_vq import EMACodebook, ResidualVQ, kmeans


def _clusters(n_per: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four tight, well separated 2-D clusters (centres at +-5) and their centres."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    points = centres.repeat_interleave(n_per, 0) + 0.1 * torch.randn(4 * n_per, 2, generator=g)
    return points, centres


def _sorted_rows(t: torch.Tensor) -> torch.Tensor:
    return t[torch.argsort(t[:, 0] * 100 + t[:, 1])]


def test_kmeans_finds_separated_clusters_and_counts_their_members() -> None:
    torch.manual_seed(3)
    points, centres = _clusters()
    # the random seeding may pick two seeds in one cluster; of several restarts one recovers all four
    found = False
    for _ in range(5):
        means, counts = kmeans(points, 4, num_iters=10)
        if sorted(counts.tolist()) == [40, 40, 40, 40]:
            torch.testing.assert_close(_sorted_rows(means), _sorted_rows(centres), atol=0.05, rtol=0)
            found = True
            break
    assert found


def test_first_forward_runs_kmeans_even_in_eval_mode_then_never_again() -> None:
    torch.manual_seed(0)
    points, _ = _clusters()
    book = EMACodebook(dim=2, codebook_size=4, kmeans_init=True, kmeans_iters=10).eval()
    assert book.initted.item() == 0 and torch.all(book.embed == 0)
    book(points[None])
    assert book.initted.item() == 1
    assert book.cluster_size.sum().item() == points.shape[0]
    torch.testing.assert_close(book.embed_avg[0], book.embed[0] * book.cluster_size[0][:, None])
    before = book.embed.clone()
    book(torch.randn(1, 10, 2) * 100)  # eval, initted: no further change
    assert torch.equal(book.embed, before)


def test_eval_mode_quantizes_to_nearest_code_without_updates_or_loss() -> None:
    rvq = ResidualVQ(dim=2, num_quantizers=1, codebook_size=3, kmeans_init=False).eval()
    codes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    rvq.layers[0]._codebook.embed.copy_(codes[None])
    x = torch.tensor([[[0.9, 0.2], [0.1, 2.0], [-0.2, -0.1]]])
    out, indices, losses = rvq(x)
    assert indices[..., 0].tolist() == [[1, 2, 0]]
    assert torch.equal(out, codes[[1, 2, 0]][None])
    assert torch.equal(losses, torch.zeros(1, 1))
    assert torch.equal(rvq.layers[0]._codebook.embed[0], codes)


def test_training_step_moves_codes_toward_assigned_vectors_by_ema() -> None:
    book = EMACodebook(dim=2, codebook_size=2, decay=0.5, kmeans_init=False, threshold_ema_dead_code=0).train()
    book.embed.copy_(torch.tensor([[[0.0, 0.0], [10.0, 10.0]]]))
    book.embed_avg.copy_(book.embed)
    book.cluster_size.fill_(1.0)
    x = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [9.0, 9.0]]])
    _, indices = book(x)
    assert indices.tolist() == [[0, 0, 1]]
    # counts: lerp(1, [2, 1], 0.5) = [1.5, 1]; sums: lerp(code, batch sum, 0.5)
    assert book.cluster_size[0].tolist() == [1.5, 1.0]
    torch.testing.assert_close(book.embed_avg[0], torch.tensor([[1.0, 1.0], [9.5, 9.5]]))
    total, eps = 2.5, book.eps
    smoothed = (torch.tensor([1.5, 1.0]) + eps) / (total + 2 * eps) * total
    torch.testing.assert_close(book.embed[0], book.embed_avg[0] / smoothed[:, None])


def test_dead_codes_are_replaced_by_batch_vectors() -> None:
    torch.manual_seed(0)
    book = EMACodebook(dim=2, codebook_size=3, decay=0.9, kmeans_init=False, threshold_ema_dead_code=1.0).train()
    book.embed.copy_(torch.tensor([[[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0]]]))
    book.embed_avg.copy_(book.embed)
    book.cluster_size.fill_(5.0)
    x = torch.randn(1, 50, 2) * 0.1 + 3.0  # every vector picks code 0
    for _ in range(30):  # the count of code 1 decays 5 * 0.9^k below the threshold of 1, then resets to 1
        book(x)
        if book.cluster_size[0, 1].item() == 1.0:
            break
    assert torch.any(torch.all(x[0] == book.embed[0, 1], dim=-1)), "code 1 was not re-seeded from the batch"
    assert book.cluster_size[0, 1].item() == book.reset_cluster_size == 1.0
    torch.testing.assert_close(book.embed_avg[0, 1], book.embed[0, 1] * book.reset_cluster_size)


def test_commitment_loss_and_straight_through_gradient_in_training() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(dim=4, num_quantizers=2, codebook_size=8, kmeans_init=True, kmeans_iters=2,
                     threshold_ema_dead_code=0).train()
    x = torch.randn(2, 16, 4, requires_grad=True)
    out, indices, losses = rvq(x)
    assert indices.shape == (2, 16, 2) and losses.shape == (1, 2)
    assert torch.all(losses > 0)
    out.sum().backward()
    # straight-through: each stage passes the gradient on unchanged (as upstream), so 2 stages give 2
    torch.testing.assert_close(x.grad, torch.full_like(x, 2.0))


def test_quantize_dropout_marks_skipped_stages_and_output_from_indices_ignores_them() -> None:
    torch.manual_seed(1)
    rvq = ResidualVQ(dim=3, num_quantizers=4, codebook_size=5, kmeans_init=False, quantize_dropout=True,
                     threshold_ema_dead_code=0).train()
    seen_short = False
    for _ in range(20):
        before = {k: v.clone() for k, v in rvq.state_dict().items()}
        out, indices, _ = rvq(torch.randn(2, 6, 3))
        used = int((indices[0, 0] >= 0).sum())
        assert torch.all(indices[..., used:] == -1) and torch.all(indices[..., :used] >= 0)
        seen_short |= used < 4
        after = {k: v.clone() for k, v in rvq.state_dict().items()}
        rvq.load_state_dict(before)  # the codes this forward used (training updates them afterwards)
        torch.testing.assert_close(rvq.get_output_from_indices(indices), out)
        rvq.load_state_dict(after)
    assert seen_short


def test_projection_when_codebook_dim_differs() -> None:
    rvq = ResidualVQ(dim=6, codebook_dim=2, num_quantizers=2, codebook_size=4, kmeans_init=False).eval()
    assert set(rvq.state_dict()) >= {"project_in.weight", "project_in.bias", "project_out.weight"}
    out, indices, _ = rvq(torch.randn(1, 5, 6))
    assert out.shape == (1, 5, 6)
    torch.testing.assert_close(rvq.get_output_from_indices(indices), out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(100 + rank)  # each rank draws different data and different random seeds
        rvq = ResidualVQ(dim=2, num_quantizers=2, codebook_size=4, kmeans_init=True, kmeans_iters=3,
                         threshold_ema_dead_code=2.0, decay=0.8).train()
        for _ in range(4):
            rvq(torch.randn(1, 32, 2) + rank * 3.0)
        torch.save({k: v.clone() for k, v in rvq.state_dict().items()}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_codebooks_stay_identical_across_ddp_ranks(tmp_path) -> None:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")  # fork: no re-import of torch in the children
    a, b = torch.load(tmp_path / "0.pt"), torch.load(tmp_path / "1.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between ranks"
    assert a["layers.0._codebook.initted"].item() == 1


def test_codes_are_chosen_in_float32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(dim=8, num_quantizers=3, codebook_size=64, kmeans_init=False).eval()
    x = torch.randn(4, 32, 8)
    _, expected, _ = rvq(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, indices, _ = rvq(x)
    assert torch.equal(indices, expected)
