"""`gennorm bench generator`: forward + backward of a whole generator per norm, interleaved, same decoder.

Issue 14's network-level check: a generator forward + backward (default resnet_6blocks, ngf 32,
128 px, batch 1) with norm=nc against norm=instance, both with the same upsampling decoder
(--upsample resize by default, so the only difference is the normalization). Like `bench
layers`: one untimed call each, then round after round over all norms (interleaved), medians,
and the ratio to the first norm (instance by default) of the same rounds; no discriminator, no
optimizer (that is `bench train`). CUDA events on a GPU, wall time on the CPU.

--mode inference times the forward alone (eval mode, torch.inference_mode), as translate runs it.

Run: gennorm bench generator --device cpu --norms instance nc --repeats 10
"""
from __future__ import annotations

import statistics
import sys

import torch

from gennorm.atomic import atomic_write_json
from gennorm.bench.timing import environment, resolve_device, time_ms
from gennorm.errors import ConfigError
from gennorm.networks import build_generator


def run(args) -> int:
    device = resolve_device(args.device)
    if min(args.ngf, args.size, args.batch, args.repeats) < 1 or args.warmup < 0:
        raise ConfigError("--ngf, --size, --batch, --repeats must be >= 1 and --warmup >= 0")
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    dtype = getattr(torch, args.dtype)
    nets = {}
    for norm in dict.fromkeys(args.norms):
        torch.manual_seed(0)
        try:
            net = build_generator(args.arch, ngf=args.ngf, norm=norm, upsample=args.upsample).to(device)
            nets[norm] = net.train(args.mode == "train")
        except ValueError as err:
            raise ConfigError(f"--norms {norm!r}: {err}") from err
    x = torch.rand(args.batch, 3, args.size, args.size, device=device) * 2 - 1

    def step(net):
        autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
        if args.mode == "inference":
            with torch.inference_mode(), autocast:
                return net(x)
        net.zero_grad(set_to_none=True)
        with autocast:
            y = net(x)
        y.float().square().mean().backward()

    first = {norm: time_ms(lambda n=net: step(n), device) for norm, net in nets.items()}  # loads, autotunes
    times = {norm: [] for norm in nets}
    for r in range(args.warmup + args.repeats):
        for norm, net in nets.items():
            ms = time_ms(lambda n=net: step(n), device)
            if r >= args.warmup:
                times[norm].append(ms)
    base = args.norms[0]
    results = {norm: {"median_ms": statistics.median(t), "times_ms": t, "first_call_ms": first[norm],
                      "params": sum(p.numel() for p in nets[norm].parameters())} for norm, t in times.items()}
    for entry in results.values():
        entry["ratio_vs_baseline"] = entry["median_ms"] / results[base]["median_ms"]
    env = environment(device)
    print(f"generator {args.arch} ngf {args.ngf}, {args.size}x{args.size}, batch {args.batch}, {args.upsample} decoder, "
          f"{args.dtype}, {'fwd+bwd' if args.mode == 'train' else 'inference'} median of {args.repeats} "
          f"interleaved rounds on {env['device_name']}")
    for norm, entry in results.items():
        print(f"  {norm:<10} {entry['median_ms']:10.2f} ms  {entry['ratio_vs_baseline']:.3f}x {base}  "
              f"({entry['params']:,} parameters)")
    if args.json:
        atomic_write_json(args.json, {**env, "arch": args.arch, "ngf": args.ngf, "size": args.size,
                                      "batch": args.batch, "upsample": args.upsample, "dtype": args.dtype,
                                      "mode": args.mode,
                                      "repeats": args.repeats, "warmup": args.warmup, "baseline": base,
                                      "results": results})
    sys.stdout.flush()
    return 0
