"""Call each torch.ops.gennorm op once on small inputs and compare with the float64 CPU reference.

    PYTHONPATH=. python tools/cuda_smoke.py --device cuda          # plain check (fallback when pytest is absent)
    compute-sanitizer --tool memcheck python tools/cuda_smoke.py --device cuda --ops-only
    PYTHONPATH=. python tools/cuda_smoke.py --device cpu           # the dry run: the same code on the CPU

Each op of the fused-op contract (docs/SPEC.md section 5.1) that is registered runs on --device with
fresh random inputs (odd sizes, stride 2, reflect / zeros padding, fp32 and bf16), and again on
the CPU in float64 (the plain-PyTorch reference kernel); the relative error ||out - ref|| / ||ref||
must stay under 1e-4 (float32) or 2e-2 (bfloat16), and no output may hold NaN. Without
--ops-only, NCConv2d's CUDA path is also checked against its torch path, forward and backward.
Ops that are not registered are listed as "n/a"; the exit code is 1 when any check fails.
"""
from __future__ import annotations

import argparse
import sys

import torch

import gennorm.ops  # noqa: F401  (registers torch.ops.gennorm.*)

TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float64: 1e-10}


def _op(name):
    try:
        return getattr(torch.ops.gennorm, name)
    except (AttributeError, RuntimeError):
        return None


def _error(out, ref) -> float:
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if not torch.isfinite(out).all():
        return float("inf")
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def _cases(device, dtype):
    """(op name, args on the device) for one window: C 5 -> O 6, 3x3, stride 2, reflect pad 1, 9x11 input."""
    g = torch.Generator().manual_seed(torch.seed() % 2**31)  # fresh inputs each run

    def rand(*shape, dt=dtype, positive=False):
        t = torch.rand(*shape, generator=g) + 0.5 if positive else torch.randn(*shape, generator=g)
        return t.to(device=device, dtype=dt)

    n, c, o, h, w, k, s, d, p = 2, 5, 6, 9, 11, [3, 3], [2, 2], [1, 1], [1, 1, 1, 1]
    hp, wp = h + 2, w + 2
    ho, wo = (hp - 3) // 2 + 1, (wp - 3) // 2 + 1
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    xc = rand(n, c, hp, wp)
    wide = xc.to(acc)
    sums = torch.cat([wide.sum(1, keepdim=True), wide.square().sum(1, keepdim=True)], 1).contiguous()
    y, grad_out = rand(n, o, ho, wo), rand(n, o, ho, wo)
    mean, rstd = rand(n, 1, ho, wo, dt=acc), rand(n, 1, ho, wo, dt=acc, positive=True)
    S, bias = rand(o, dt=acc), rand(o, dt=acc)
    for mode in ("reflect", "zeros"):
        yield f"pad_center_sums[{mode}]", "pad_center_sums", (rand(n, c, h, w), p, mode, 1)
        yield (f"pad_center_sums_backward[{mode}]", "pad_center_sums_backward",
               (rand(n, c, hp, wp), xc, rand(n, 2, ho, wo, dt=acc), k, s, d, p, mode, 1))
    yield "window_epilogue", "window_epilogue", (y, sums, S, bias, k, s, d, c, 1e-5)
    yield "window_epilogue_backward", "window_epilogue_backward", (grad_out, y, mean, rstd, S, c, k)
    yield "patch_moments", "patch_moments", (xc, k, s, d, 1, 1e-5)


def _to_reference(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double()
    return value


def check_ops(device, dtype) -> list[tuple[str, str]]:
    rows = []
    for label, name, args in _cases(device, dtype):
        op = _op(name)
        if op is None:
            rows.append((f"{label} {dtype}", "n/a (op not available)"))
            continue
        try:
            outs = op(*args)
            if device.type == "cuda":
                torch.cuda.synchronize()
            refs = op(*[_to_reference(a) for a in args])
        except Exception as err:  # noqa: BLE001  (report every op, then fail)
            rows.append((f"{label} {dtype}", f"FAIL {type(err).__name__}: {str(err).splitlines()[0][:150]}"))
            continue
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        refs = refs if isinstance(refs, (tuple, list)) else (refs,)
        errors = [_error(a, b) for a, b in zip(outs, refs)]
        worst = max(errors)
        verdict = "ok" if worst <= TOL[dtype] else "FAIL"
        rows.append((f"{label} {dtype}", f"{verdict} max rel err {worst:.2e} over {len(errors)} outputs"))
    return rows


def check_layer(device) -> list[tuple[str, str]]:
    """NCConv2d impl='cuda' against impl='torch' (float32, reflect, stride 1 and 2), forward and input/weight grads."""
    from gennorm.layers import NCConv2d

    rows = []
    for stride, mode in ((1, "reflect"), (2, "zeros")):
        label = f"NCConv2d cuda vs torch, stride {stride}, {mode}"
        try:
            torch.manual_seed(0)
            ref = NCConv2d(5, 6, 3, stride, 1, padding_mode=mode, impl="torch").to(device)
            fast = NCConv2d(5, 6, 3, stride, 1, padding_mode=mode, impl="cuda").to(device)
            fast.load_state_dict(ref.state_dict())
            x = torch.randn(2, 5, 9, 11, device=device, requires_grad=True)
            outs = []
            for layer in (ref, fast):
                x.grad = None
                y = layer(x)
                y.square().sum().backward()
                outs.append((y.detach(), x.grad.clone(), layer.weight.grad.clone()))
            worst = max(_error(a, b) for a, b in zip(outs[1], outs[0]))
            rows.append((label, f"{'ok' if worst <= 1e-4 else 'FAIL'} max rel err {worst:.2e}"))
        except Exception as err:  # noqa: BLE001
            rows.append((label, f"FAIL {type(err).__name__}: {str(err).splitlines()[0][:150]}"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--ops-only", action="store_true", help="skip the NCConv2d layer check (for memcheck)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        rows += check_ops(device, dtype)
    if not args.ops_only and device.type == "cuda":
        rows += check_layer(device)
    width = max(len(r[0]) for r in rows)
    for label, verdict in rows:
        print(f"{label:<{width}}  {verdict}")
    failed = [r for r in rows if r[1].startswith("FAIL")]
    print(f"cuda_smoke on {device}: {len(rows) - len(failed)} of {len(rows)} checks passed or n/a, "
          f"{len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
