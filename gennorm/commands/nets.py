"""`gennorm nets`: look at the networks without training them (gennorm.networks.summary).

    gennorm nets summary resnet_9blocks --norm nc --size 64
    gennorm nets list
"""
from __future__ import annotations

from gennorm.commands._types import positive_int

DESCRIPTION = """\
Architecture summaries: every layer with its output shape and parameter count, and the total.

examples:
  gennorm nets summary resnet_9blocks --norm instance            # the CycleGAN generator
  gennorm nets summary resnet_9blocks --norm pono-ms --size 64   # PONO-MS (0 extra parameters)
  gennorm nets summary unet_256 --norm batch --ngf 32
  gennorm nets summary basic --norm convnorm --size 256          # 70x70 PatchGAN, 30x30 output
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
    summary.add_argument("--upsample", choices=("resize", "transpose"), default=None,
                         help="generator upsampling (default: resize for nc/kn, transpose otherwise)")
    summary.add_argument("--dropout", action="store_true", help="generator dropout layers")


def run(args) -> int:
    from gennorm.networks.summary import catalogue, describe

    if args.action == "list":
        print(catalogue())
        return 0
    print(describe(args.arch, args.size, args.batch, args.input_nc, kind=args.kind, norm=args.norm, ngf=args.ngf,
                   ndf=args.ndf, output_nc=args.output_nc, n_layers=args.n_layers, upsample=args.upsample,
                   dropout=args.dropout))
    return 0
