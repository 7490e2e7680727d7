"""The shared training loop: resume from a checkpoint, early stopping, augmentation."""

from __future__ import annotations

import pytest
import torch

from pipeline.lake import Lake
from pipeline.training.core import (
    Checkpointer,
    LoopConfig,
    RunOptions,
    augment_tokens,
    run_training,
    seed_everything,
)

CFG = LoopConfig(epochs=2, learning_rate=0.05, weight_decay=0.01, warmup_ratio=0.2)


def batches(epoch: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(100 + epoch)
    return [{"x": torch.randn(4, 3, generator=g), "y": torch.randn(4, 1, generator=g)} for _ in range(5)]


def model() -> torch.nn.Module:
    seed_everything(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))


def mse(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.nn.functional.mse_loss(net(batch["x"]), batch["y"])


class Crash(Exception):
    pass


def test_a_run_resumed_from_its_checkpoint_ends_where_an_uninterrupted_run_ends(tmp_path):
    reference = model()
    whole = run_training(reference, batches, mse, CFG, RunOptions())

    lake = Lake((tmp_path / "ckpt").as_uri())
    checkpoint = Checkpointer(lake, lake.uri("checkpoint.pt"))
    calls = {"n": 0}

    def crashing(net, batch):
        calls["n"] += 1
        if calls["n"] == 8:  # dies in the middle of the second epoch
            raise Crash
        return mse(net, batch)

    with pytest.raises(Crash):
        run_training(model(), batches, crashing, CFG, RunOptions(checkpoint=checkpoint, checkpoint_every_steps=3))
    assert torch.load(tmp_path / "ckpt" / "checkpoint.pt", weights_only=False)["history"]["steps"] == 6

    seed_everything(12345)  # whatever the process did since, the checkpoint's RNG state wins
    resumed_model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    resumed = run_training(resumed_model, batches, mse, CFG, RunOptions(checkpoint=checkpoint, checkpoint_every_steps=3))
    assert (resumed.resumed_at_step, resumed.steps, whole.steps) == (6, 10, 10)
    for a, b in zip(reference.state_dict().values(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert [e["train_loss"] for e in resumed.epochs] == pytest.approx([e["train_loss"] for e in whole.epochs])


def test_a_checkpoint_for_another_run_shape_is_refused(tmp_path):
    lake = Lake((tmp_path / "ckpt").as_uri())
    checkpoint = Checkpointer(lake, lake.uri("checkpoint.pt"))
    run_training(model(), batches, mse, CFG, RunOptions(checkpoint=checkpoint))
    longer = LoopConfig(epochs=3, learning_rate=0.05, weight_decay=0.01, warmup_ratio=0.2)
    with pytest.raises(RuntimeError, match="is for 10 steps, this run has 15"):
        run_training(model(), batches, mse, longer, RunOptions(checkpoint=checkpoint))


def test_early_stopping_keeps_the_best_epoch():
    cfg = LoopConfig(epochs=6, learning_rate=0.05, weight_decay=0.0, warmup_ratio=0.1, early_stopping_patience=2)
    net = model()
    seen: list[dict[str, torch.Tensor]] = []
    val_losses = iter([3.0, 1.0, 2.0, 2.5, 0.5, 0.1])

    def validate(m: torch.nn.Module) -> float:
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(val_losses)

    history = run_training(net, batches, mse, cfg, RunOptions(), validate)
    assert history.stopped_early and len(history.epochs) == 4  # epochs 3 and 4 did not beat epoch 2
    assert [e["val_loss"] for e in history.epochs] == [3.0, 1.0, 2.0, 2.5]
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, seen[1][key])  # the weights of epoch 2


def test_bf16_autocast_is_chosen_on_cuda_or_when_asked():
    assert RunOptions(torch.device("cpu")).autocast_dtype is None
    assert RunOptions(torch.device("cuda")).autocast_dtype == torch.bfloat16
    assert RunOptions(torch.device("cpu"), precision="bf16").autocast_dtype == torch.bfloat16
    assert RunOptions(torch.device("cuda"), precision="fp32").autocast_dtype is None
    history = run_training(model(), batches, mse, CFG, RunOptions(precision="bf16"))  # CPU autocast runs too
    assert history.steps == 10 and all(e["train_loss"] == e["train_loss"] for e in history.epochs)


def test_token_dropout_hides_only_ordinary_tokens():
    ids = torch.tensor([[101, 5, 6, 7, 8, 9, 102, 0]] * 200)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0]] * 200)
    out = augment_tokens({"input_ids": ids, "attention_mask": mask}, 0.3, torch.Generator().manual_seed(0),
                         special_ids=[0, 101, 102])
    new = out["attention_mask"]
    assert (new[:, [0, 6]] == 1).all() and (new[:, 7] == 0).all()  # [CLS], [SEP] kept, padding stays out
    dropped = 1 - new[:, 1:6].float().mean().item()
    assert 0.25 < dropped < 0.35
    assert augment_tokens({"input_ids": ids, "attention_mask": mask}, 0.0, torch.Generator(), [0])["attention_mask"] is mask


def test_a_global_batch_is_shared_by_rows_with_loss_factors_that_average_to_it():
    from pipeline.training.parallel import shard

    lengths = [2, 3, 3, 4, 6]  # a length-sorted batch of 5 rows, padded to 6 columns
    mask = torch.tensor([[1] * n + [0] * (6 - n) for n in lengths])
    batch = {"input_ids": mask * 7, "attention_mask": mask, "labels": torch.arange(5), "row": torch.arange(5)}
    parts = [shard(batch, rank, 2) for rank in range(2)]
    assert [p["labels"].tolist() for p, _ in parts] == [[0, 2, 4], [1, 3]]
    assert [p["input_ids"].shape[1] for p, _ in parts] == [6, 4]  # padding no row of the share needs is dropped
    assert [int(p["attention_mask"].sum()) for p, _ in parts] == [11, 7]  # tokens: about half each
    assert [f for _, f in parts] == pytest.approx([6 / 5, 4 / 5])
    # the ranks' mean of factor x (mean over their rows) is the mean over the whole batch
    values = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0])
    ranks_mean = sum(f * float(values[p["row"]].mean()) for p, f in parts) / 2
    assert ranks_mean == pytest.approx(float(values.mean()))

    lone = {"x": torch.ones(1, 3)}  # fewer rows than ranks: the idle rank computes with factor 0
    assert [(p["x"].shape[0], f) for p, f in (shard(lone, r, 2) for r in range(2))] == [(1, 2.0), (1, 0.0)]


def test_layer_wise_decay_slows_lower_layers_and_leaves_the_head_at_the_full_rate():
    from pipeline.training.core import build_optimizer

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = torch.nn.Linear(2, 2)
            self.layer = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(3)])
            self.head = torch.nn.Linear(2, 1)

    net = Encoder()
    rates = {}
    optimizer, _ = build_optimizer(net, LoopConfig(1, 1e-3, 0.01, 0.1, layer_decay=0.5), total_steps=10)
    for group in optimizer.param_groups:
        for param in group["params"]:
            name = next(n for n, p in net.named_parameters() if p is param)
            rates[name] = group["initial_lr"]
            assert group["weight_decay"] == (0.0 if param.ndim < 2 else 0.01)
    assert rates["head.weight"] == 1e-3 and rates["layer.2.weight"] == 5e-4
    assert rates["layer.0.weight"] == 1e-3 * 0.5 ** 3 and rates["embeddings.weight"] == 1e-3 * 0.5 ** 4
    same, _ = build_optimizer(net, LoopConfig(1, 1e-3, 0.01, 0.1), total_steps=10)
    assert len(same.param_groups) == 2 and {g["lr"] for g in same.param_groups} == {1e-3}
