"""`gennorm nets`: look at the networks without training them (gennorm.networks.summary).

    gennorm nets summary resnet_9blocks --norm nc --size 64
    gennorm nets list
"""
from __future__ import annotations

from gennorm.commands._types import positive_int

DESCRIPTION = """\
Architecture summaries: every layer with its output shape and parameter count, and the total;
for a generator, the training step's estimated memory (parameters, gradients, Adam moments, EMA,
activations saved for backward; traced on fake tensors, nothing allocated; docs/memory.md).

examples:
  gennorm nets summary resnet_9blocks --norm instance            # the CycleGAN generator
  gennorm nets summary resnet_9blocks --norm pono-ms --size 64   # PONO-MS (0 extra parameters)
  gennorm nets summary unet_256 --norm batch --ngf 32
  gennorm nets summary basic --norm convnorm --size 256          # 70x70 PatchGAN, 30x30 output
  gennorm nets summary unet_256 --norm batch --batch 4 --amp bf16 # pix2pix step memory (G + D)
  gennorm nets summary resnet_9blocks --task cyclegan --ema       # two G, two D, EMA copies
  gennorm nets summary pixel --kind discriminator --norm batch
  gennorm nets list                                              # architectures and norms
"""


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the architectures and norm names")
    summary = actions.add_parser("summary", help="layers, output shapes, parameters of one network")
    summary.add_argument("arch", help="resnet_9blocks | resnet_6blocks | unet_256 | unet_128 (generators), "
                                      "basic | n_layers | pixel (discriminators)")
    summary.add_argument("--kind", choices=("generator", "discriminator"), default=None,
                         help="default: from the architecture name")
    summary.add_argument("--norm", default="instance", help="a norm name (gennorm nets list); default instance")
    summary.add_argument("--size", type=positive_int, default=256, help="input height = width (default 256)")
    summary.add_argument("--batch", type=positive_int, default=1, help="batch size of the zero input (default 1)")
    summary.add_argument("--ngf", type=positive_int, default=64, help="generator width (default 64)")
    summary.add_argument("--ndf", type=positive_int, default=64, help="discriminator width (default 64)")
    summary.add_argument("--input-nc", type=positive_int, default=3, help="input channels (default 3)")
    summary.add_argument("--output-nc", type=positive_int, default=3, help="generator output channels (default 3)")
    summary.add_argument("--n-layers", type=positive_int, default=3, help="PatchGAN depth for arch n_layers (default 3)")
    summary.add_argument("--upsample", choices=("resize", "transpose", "antialias"), default=None,
                         help="generator upsampling (default: resize for nc/kn, transpose otherwise; antialias: CUT's)")
    summary.add_argument("--antialias", action="store_true",
                         help="CUT's blur-pooled downsampling (model.antialias; ResNet G, PatchGAN D)")
    summary.add_argument("--dropout", action="store_true", help="generator dropout layers")
    summary.add_argument("--task", choices=("pix2pix", "cyclegan"), default="pix2pix",
                         help="the training step the memory estimate is for (default pix2pix: G + D on cat(A, B))")
    summary.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="train.amp (default none)")
    summary.add_argument("--ema", action="store_true", help="train.ema > 0: EMA copies of the generators")
    summary.add_argument("--d-arch", choices=("basic", "n_layers", "pixel"), default="basic",
                         help="the task's discriminator (default basic)")
    summary.add_argument("--d-norm", default=None, help="the discriminator's norm (default: --norm)")
    summary.add_argument("--no-memory", action="store_true", help="only the layer table")


def run(args) -> int:
    from gennorm.networks.memory import plan_memory
    from gennorm.networks.summary import catalogue, describe

    if args.action == "list":
        print(catalogue())
        return 0
    print(describe(args.arch, args.size, args.batch, args.input_nc, kind=args.kind, norm=args.norm, ngf=args.ngf,
                   ndf=args.ndf, output_nc=args.output_nc, n_layers=args.n_layers, upsample=args.upsample,
                   dropout=args.dropout, antialias=args.antialias))
    if args.kind != "discriminator" and args.arch in ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128") \
            and not args.no_memory:
        print()
        print(plan_memory(args.task, args.arch, args.norm, size=args.size, batch=args.batch, amp=args.amp,
                          d_arch=args.d_arch, d_norm=args.d_norm, ngf=args.ngf, ndf=args.ndf, n_layers=args.n_layers,
                          input_nc=args.input_nc, output_nc=args.output_nc, upsample=args.upsample,
                          use_dropout=args.dropout, ema=args.ema, antialias=args.antialias).table())
    return 0
