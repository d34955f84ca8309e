"""Collectives run on the device of the process group's backend (NCCL rejects CPU tensors)."""

import socket

import pytest
import torch
import torch.distributed
import torch.multiprocessing

from hlora_cli.train.distributed import CUDA_BACKEND, Dist


class Handed(Exception):
    """Raised by the recorder where the rest of the call cannot run without the real device."""


@pytest.fixture
def handed(monkeypatch):
    """torch.distributed.all_reduce replaced by a recorder: a copy of every tensor handed to it;
    on the CPU it sums as if a second rank held the same values, elsewhere it stops the call."""
    seen: list[torch.Tensor] = []

    def all_reduce(t, *args, **kw):
        seen.append(t.detach().clone())
        if t.device.type != "cpu":
            raise Handed
        t.mul_(2)

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    return seen


def params_with_grads() -> list[torch.nn.Parameter]:
    a, b, c = (torch.nn.Parameter(torch.full(shape, 1.0)) for shape in [(2, 3), (4,), (1,)])
    a.grad, b.grad = torch.arange(6.0).view(2, 3), torch.tensor([0.5, -1.0, 2.0, 4.0])  # c has none
    return [a, b, c]


def test_gloo_sum_and_average_stay_on_the_cpu(handed):
    d = Dist(rank=0, world_size=2)
    assert d.device == torch.device("cpu")
    assert d.sum([1.0, 2.5, 0.0]) == [2.0, 5.0, 0.0]
    params = params_with_grads()
    d.average_gradients(params)
    assert [(t.device.type, t.dtype) for t in handed] == [("cpu", torch.float64), ("cpu", torch.float32)]
    assert handed[1].tolist() == [*range(6), 0.5, -1.0, 2.0, 4.0, 0.0]  # one flat all-reduce, missing grad = 0
    torch.testing.assert_close(params[0].grad, torch.arange(6.0).view(2, 3))  # (2 x grad) / 2 ranks
    torch.testing.assert_close(params[1].grad, torch.tensor([0.5, -1.0, 2.0, 4.0]))
    assert params[2].grad.tolist() == [0.0]
    assert all(p.grad.shape == p.shape and p.grad.device == p.device for p in params)


def test_a_single_process_makes_no_collective(handed):
    d = Dist()
    params = params_with_grads()
    assert d.sum([1.0, 2.0]) == [1.0, 2.0]
    d.average_gradients(params)
    assert handed == [] and params[2].grad is None


def test_collectives_use_the_backend_device_not_the_cpu(handed):
    """The meta device stands in for cuda:N: CPU values and CPU gradients must be moved to it."""
    d = Dist(rank=1, world_size=2, local_rank=1, device=torch.device("meta"))
    with pytest.raises(Handed):
        d.sum([1.0, 2.0])
    with pytest.raises(Handed):
        d.average_gradients(params_with_grads())
    assert [(t.device.type, t.dtype, t.shape) for t in handed] == [
        ("meta", torch.float64, (2,)),
        ("meta", torch.float32, (11,)),
    ]


def test_from_env_on_cuda_joins_gloo_and_nccl_on_the_local_gpu(monkeypatch):
    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend: calls.setdefault("backend", backend))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.setdefault("set_device", device))
    d = Dist.from_env(use_cuda=True)
    assert (d.rank, d.world_size, d.local_rank, d.device) == (3, 2, 1, torch.device("cuda", 1))
    assert calls == {"backend": "cpu:gloo,cuda:nccl", "set_device": torch.device("cuda", 1)}
    assert CUDA_BACKEND == "cpu:gloo,cuda:nccl"

    calls.clear()
    d = Dist.from_env(use_cuda=False)
    assert d.device == torch.device("cpu") and calls == {"backend": "gloo"}

    monkeypatch.setenv("WORLD_SIZE", "1")
    calls.clear()
    assert Dist.from_env(use_cuda=True) == Dist() and calls == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_dist_hands_cuda_tensors_and_returns_floats(monkeypatch):
    d = Dist(rank=0, world_size=2, local_rank=0, device=torch.device("cuda", 0))
    handed_cuda = []

    def all_reduce(t, *args, **kw):  # a sum on the GPU, as NCCL would do it
        handed_cuda.append(t.device)
        t.mul_(2)

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    assert d.sum([1.0, 2.5]) == [2.0, 5.0]
    params = [torch.nn.Parameter(p.detach().cuda()) for p in params_with_grads()]
    params[0].grad, params[1].grad = torch.ones(2, 3, device="cuda"), torch.ones(4, device="cuda")
    d.average_gradients(params)
    assert handed_cuda == [torch.device("cuda", 0)] * 2
    assert all(p.grad.device == p.device for p in params) and params[2].grad.tolist() == [0.0]


def _worker(rank: int, port: int, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    d = Dist(rank, 2, rank)
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.full((3,), float(rank + 1))
    d.average_gradients([p])
    results[rank] = (d.sum([rank + 1.0, 10.0]), p.grad.tolist())
    d.close()


@pytest.mark.slow
def test_two_gloo_processes_sum_and_average():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = torch.multiprocessing.Manager().dict()
    torch.multiprocessing.spawn(_worker, args=(port, results), nprocs=2)
    assert dict(results) == {0: ([3.0, 20.0], [1.5, 1.5, 1.5]), 1: ([3.0, 20.0], [1.5, 1.5, 1.5])}
