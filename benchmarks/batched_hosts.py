"""Would a native vector env pay on CPU? N hosts trained in lockstep as one batched computation,
against the same N hosts trained one by one and in parallel processes.

    python benchmarks/batched_hosts.py [--hosts HostCNN-Narrow HostCNN] [--n 2 4 8 16] [--batches 20]
        [--cores 2] [--out DIR]

For each host and N, one SGD step (momentum 0.9, weight decay 5e-4, batch 128 per host, 16x16
images: the "tiny" fidelity) of N independent hosts, timed three ways in the same run:

* ``sequential``: the N hosts one after another in one process, one torch thread (what one
  single env does N times);
* ``processes``: the N hosts split over ``--cores`` worker processes, one thread each (what N
  async single envs do on that many cores);
* ``batched``: the N hosts as one computation in one process with ``--cores`` threads: stacked
  parameters, grouped convolutions with the hosts' channels side by side (BatchNorm stays per
  host, channel by channel), one einsum head, one foreach SGD (the design of a native vector env).

Prints milliseconds per host-step and the ratios ``batched / processes`` (the speedup a native
vector env could have over async envs in host training, the bulk of an env step) and
``batched / sequential``; writes ``OUT/batched_hosts.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch
import torch.nn.functional as F
from _common import ENV_ID, add_results_argument, provenance

from esper_env.hosts import HOST_SPECS, build_host

BATCH, RES, CLASSES = 128, 16, 10
FMT = torch.channels_last


def _data(n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(BATCH, 3, RES, RES, generator=g).contiguous(memory_format=FMT) for _ in range(n)]
    ys = [torch.randint(0, CLASSES, (BATCH,), generator=g) for _ in range(n)]
    return xs, ys


def sequential_seconds(host: str, n: int, batches: int, threads: int = 1) -> float:
    """Seconds for ``batches`` SGD steps of each of ``n`` hosts, one after another."""
    torch.set_num_threads(threads)
    nets = [build_host(host, CLASSES, seed=i).to(memory_format=FMT) for i in range(n)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4) for m in nets]
    xs, ys = _data(n)

    def step() -> None:
        for m, o, x, y in zip(nets, opts, xs, ys):
            loss = F.cross_entropy(m(x), y)
            o.zero_grad()
            loss.backward()
            o.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        step()
    return time.perf_counter() - start


class BatchedHosts:
    """``n`` conv-BN-ReLU hosts (seeds ``0..n-1``) as one computation: stacked parameters, grouped
    convolutions with host ``i``'s channels at ``[i * C, (i + 1) * C)``, BatchNorm per channel (so
    per host), an einsum head, one foreach SGD over all of it."""

    def __init__(self, host: str, n: int) -> None:
        spec = HOST_SPECS[host]
        if spec.kind != "cnn":
            raise ValueError(f"the batched form is written for conv-BN-ReLU hosts, not {spec.kind!r}")
        self.n = n
        self.nets = [build_host(host, CLASSES, seed=i) for i in range(n)]
        self.blocks = []
        for b, pooled in enumerate(spec.pooled):
            convs = [m.segments[b][0] for m in self.nets]
            bns = [m.segments[b][1] for m in self.nets]
            self.blocks.append({
                "w": torch.cat([c.weight.detach() for c in convs]).contiguous(memory_format=FMT).requires_grad_(),
                "g": torch.cat([x.weight.detach() for x in bns]).requires_grad_(),
                "b": torch.cat([x.bias.detach() for x in bns]).requires_grad_(),
                "rm": torch.cat([x.running_mean for x in bns]), "rv": torch.cat([x.running_var for x in bns]),
                "pool": pooled,
            })  # fmt: skip
        heads = [m.segments[-1][-1] for m in self.nets]
        self.w_head = torch.stack([h.weight.detach() for h in heads]).requires_grad_()
        self.b_head = torch.stack([h.bias.detach() for h in heads]).requires_grad_()
        params = [t for blk in self.blocks for t in (blk["w"], blk["g"], blk["b"])] + [
            self.w_head,
            self.b_head,
        ]
        self.opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4, foreach=True)

    def logits(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """``[batch, n, classes]``: host ``i``'s logits on ``xs[i]`` (training-mode BatchNorm)."""
        h = torch.cat(xs, 1).contiguous(memory_format=FMT)
        for blk in self.blocks:
            h = F.conv2d(h, blk["w"], padding=1, groups=self.n)
            h = F.relu(F.batch_norm(h, blk["rm"], blk["rv"], blk["g"], blk["b"], training=True))
            if blk["pool"]:
                h = F.max_pool2d(h, 2)
        feats = h.mean((2, 3)).view(h.shape[0], self.n, -1)
        return torch.einsum("bnc,nkc->bnk", feats, self.w_head) + self.b_head

    def step(self, xs: list[torch.Tensor], ys: torch.Tensor) -> None:
        logits = self.logits(xs)
        loss = F.cross_entropy(logits.reshape(-1, CLASSES), ys.reshape(-1), reduction="sum") / ys.shape[0]
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()


def batched_seconds(host: str, n: int, batches: int, threads: int) -> float:
    """Seconds for ``batches`` SGD steps of ``n`` hosts run as one grouped computation."""
    torch.set_num_threads(threads)
    hosts = BatchedHosts(host, n)
    xs, ys = _data(n)
    y_all = torch.stack(ys, 1)
    hosts.step(xs, y_all)  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        hosts.step(xs, y_all)
    return time.perf_counter() - start


def processes_seconds(host: str, n: int, batches: int, cores: int) -> float:
    """Wall seconds for the ``n`` hosts split over ``cores`` processes of one thread each."""
    shares = [n // cores + (i < n % cores) for i in range(cores)]
    with ProcessPoolExecutor(cores, mp_context=get_context("spawn")) as pool:
        list(pool.map(sequential_seconds, [host] * cores, [1] * cores, [1] * cores))  # start the workers
        start = time.perf_counter()
        list(pool.map(sequential_seconds, [host] * cores, [s for s in shares], [batches] * cores))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--hosts", nargs="+", default=["HostCNN-Narrow", "HostCNN"], choices=list(HOST_SPECS))
    parser.add_argument("--n", nargs="+", type=int, default=[2, 4, 8, 16], help="hosts trained together")
    parser.add_argument("--batches", type=int, default=20, help="timed SGD steps per host")
    parser.add_argument("--cores", type=int, default=2, help="processes, and threads of the batched form")
    add_results_argument(parser)
    args = parser.parse_args()

    rows = []
    print(
        "| host | N | sequential ms/host-step | processes | batched | batched vs processes | batched vs sequential |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for host in args.hosts:
        for n in args.n:
            steps = n * args.batches
            seq = sequential_seconds(host, n, args.batches) / steps * 1e3
            par = processes_seconds(host, n, args.batches, args.cores) / steps * 1e3
            bat = batched_seconds(host, n, args.batches, args.cores) / steps * 1e3
            rows.append({"host": host, "n": n, "sequential_ms": seq, "processes_ms": par, "batched_ms": bat,
                         "batched_over_processes": par / bat, "batched_over_sequential": seq / bat})  # fmt: skip
            print(f"| {host} | {n} | {seq:.2f} | {par:.2f} | {bat:.2f} | {par / bat:.2f}x | {seq / bat:.2f}x |",
                  flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"batch": BATCH, "resolution": RES, "cores": args.cores, "batches": args.batches}
    result = {
        "provenance": provenance(__file__, None, ENV_ID, args.cores),
        "settings": settings,
        "rows": rows,
    }
    (args.out / "batched_hosts.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out / 'batched_hosts.json'}")


if __name__ == "__main__":
    main()
