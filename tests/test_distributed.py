"""Data-parallel `fit`: two CPU processes (gloo, launched by torchrun) take the same steps as one.

torchrun runs this file as a script (see the bottom); each process trains with the same
`fit` call as the single-process run of the test, on its half of every global batch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nlpbook import distributed, fit, set_seed

OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01),
}


def _global_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Three fixed batches of 8 rows; every process builds the same ones."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(3):
        x = torch.randn(8, 4, generator=g)
        out.append((x, x.sum(dim=1, keepdim=True).sin()))
    return out


def _train(optimizer: str) -> tuple[dict[str, torch.Tensor], list[float], list[int]]:
    """Final parameters, loss history and rows per step of 7 steps of a small MLP."""
    set_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    rows = []

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        rows.append(len(batch[0]))
        return F.mse_loss(m(batch[0]), batch[1])

    history = fit(
        model,
        _global_batches(),
        optimizer=OPTIMIZERS[optimizer](model.parameters()),
        steps=7,
        loss_fn=loss_fn,
        grad_clip=1.0,
        progress=False,
    )
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, history.loss, rows


def test_two_processes_take_the_same_steps_as_one(tmp_path):
    """Parameters and averaged losses of 2 gloo processes equal one process (abs 1e-6)."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    out = subprocess.run(
        [*cmd, __file__, str(tmp_path)], capture_output=True, text=True, timeout=180, env=env
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    single = {name: _train(name) for name in OPTIMIZERS}
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["world_size"] == 2
        for name, (state, losses, rows) in single.items():
            assert rows == [8] * 7 and result[name][2] == [4] * 7  # each rank: half a batch
            assert result[name][1] == pytest.approx(losses, abs=1e-6), name
            for key, value in state.items():
                torch.testing.assert_close(result[name][0][key], value, rtol=0, atol=1e-6)
    # the runs moved the parameters, so the comparison above could fail
    assert single["adam"][1][-1] < single["adam"][1][0]


def test_init_without_torchrun_is_a_world_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init() == (0, 1)
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    value = torch.tensor([1.5, 2.0])
    assert distributed.mean_over_processes(value) is value


def test_shard_takes_each_rank_its_rows():
    batch = {"x": torch.arange(12).view(6, 2), "y": (torch.arange(6), [torch.zeros(6)]), "n": 3}
    parts = [distributed.shard(batch, rank=r, world_size=3) for r in range(3)]
    assert parts[1]["x"].tolist() == [[4, 5], [6, 7]]
    assert parts[2]["y"][0].tolist() == [4, 5]
    assert isinstance(parts[0]["y"], tuple) and isinstance(parts[0]["y"][1], list)
    assert parts[0]["n"] == 3
    assert torch.equal(torch.cat([p["x"] for p in parts]), batch["x"])
    assert distributed.shard(batch) is batch  # a world of one keeps the whole batch


def test_shard_bad_inputs():
    with pytest.raises(ValueError, match="cannot be split evenly over 4 processes"):
        distributed.shard(torch.zeros(6, 2), rank=0, world_size=4)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        distributed.shard(torch.zeros(6, 2), rank=2, world_size=2)


if __name__ == "__main__":  # one of the processes torchrun starts for the first test
    rank, world_size = distributed.init()
    results = {name: _train(name) for name in OPTIMIZERS}
    torch.save(results | {"world_size": world_size}, Path(sys.argv[1]) / f"rank{rank}.pt")
    distributed.finish()
