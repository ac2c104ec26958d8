"""`gennorm bench generator`: forward + backward of a whole generator per norm, interleaved, same decoder.

Issue 14's network-level check: a generator forward + backward (default resnet_6blocks, ngf 32,
128 px, batch 1) with norm=nc against norm=instance, both with the same upsampling decoder
(--upsample resize by default, so the only difference is the normalization). Like `bench
layers`: one untimed call each, then round after round over all norms (interleaved), medians,
and the ratio to the first norm (instance by default) of the same rounds; no discriminator, no
optimizer (that is `bench train`). CUDA events on a GPU, wall time on the CPU.

Run: gennorm bench generator --device cpu --norms instance nc --repeats 10
"""
from __future__ import annotations

import statistics
import sys

DESCRIPTION = """\
Median forward + backward time of one generator per norm, interleaved rounds in one process,
the same decoder for every norm; ratio to the first --norms entry (default instance).

examples:
  gennorm bench generator --device cpu --norms instance nc --json gen.json
  gennorm bench generator --device cuda --arch resnet_9blocks --ngf 64 --size 256 --dtype bfloat16
"""


def add_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--arch", default="resnet_6blocks",
                        choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    parser.add_argument("--norms", nargs="+", default=["instance", "nc"],
                        help="generator norms; the first is the baseline (default: instance nc)")
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--size", type=int, default=128, help="image side (default 128)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--upsample", default="resize", choices=("resize", "transpose"),
                        help="decoder for every norm (default resize: the one fused norms need)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="float32, or bfloat16/float16 under torch.autocast")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds after the first call (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: PyTorch's choice)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every number, device, versions, date")


def run(args) -> int:
    import torch

    from gennorm.bench.timing import environment, resolve_device, time_ms
    from gennorm.errors import ConfigError
    from gennorm.networks import build_generator

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
            nets[norm] = build_generator(args.arch, ngf=args.ngf, norm=norm, upsample=args.upsample).to(device).train()
        except ValueError as err:
            raise ConfigError(f"--norms {norm!r}: {err}") from err
    x = torch.rand(args.batch, 3, args.size, args.size, device=device) * 2 - 1

    def step(net):
        net.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
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
          f"{args.dtype}, fwd+bwd median of {args.repeats} interleaved rounds on {env['device_name']}")
    for norm, entry in results.items():
        print(f"  {norm:<10} {entry['median_ms']:10.2f} ms  {entry['ratio_vs_baseline']:.3f}x {base}  "
              f"({entry['params']:,} parameters)")
    if args.json:
        from gennorm.atomic import atomic_write_json

        atomic_write_json(args.json, {**env, "arch": args.arch, "ngf": args.ngf, "size": args.size,
                                      "batch": args.batch, "upsample": args.upsample, "dtype": args.dtype,
                                      "repeats": args.repeats, "warmup": args.warmup, "baseline": base,
                                      "results": results})
    sys.stdout.flush()
    return 0
