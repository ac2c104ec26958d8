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
  gennorm nets summary resnet_9blocks --task cut --antialias      # CUT: G, D, the PatchNCE heads F
  gennorm nets summary resnet_9blocks --task cut --no-nce-idt     # FastCUT (no identity NCE)
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
    summary.add_argument("--task", choices=("pix2pix", "cyclegan", "cut"), default="pix2pix",
                         help="the training step the memory estimate is for (default pix2pix: G + D on cat(A, B))")
    cut = summary.add_argument_group("--task cut (train's keys of the same name; default: the cut presets')")
    cut.add_argument("--no-nce-idt", action="store_true", help="train.nce_idt=false: FastCUT, G on A only")
    cut.add_argument("--nce-layers", default=None, help="encoder taps, comma-separated (default: the generator's)")
    cut.add_argument("--num-patches", type=positive_int, default=None, help="patches per tap and image (256)")
    cut.add_argument("--netf-nc", type=positive_int, default=None, help="the PatchSampleF MLP width (256)")
    cut.add_argument("--nce-batch-negatives", action="store_true",
                     help="negatives from the whole batch ([1, B*P, B*P] logits per tap)")
    summary.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="train.amp (default none)")
    summary.add_argument("--ema", action="store_true", help="train.ema > 0: EMA copies of the generators")
    summary.add_argument("--d-arch", choices=("basic", "n_layers", "pixel"), default="basic",
                         help="the task's discriminator (default basic)")
    summary.add_argument("--d-norm", default=None, help="the discriminator's norm (default: --norm)")
    summary.add_argument("--no-memory", action="store_true", help="only the layer table")


def run(args) -> int:
    import functools

    from gennorm.config import TrainConfig
    from gennorm.networks.memory import plan_memory
    from gennorm.networks.summary import catalogue, describe
    from gennorm.train.cut import patch_nce

    if args.action == "list":
        print(catalogue())
        return 0
    print(describe(args.arch, args.size, args.batch, args.input_nc, kind=args.kind, norm=args.norm, ngf=args.ngf,
                   ndf=args.ndf, output_nc=args.output_nc, n_layers=args.n_layers, upsample=args.upsample,
                   dropout=args.dropout, antialias=args.antialias))
    if args.kind != "discriminator" and args.arch in ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128") \
            and not args.no_memory:
        t = TrainConfig()  # CUT's defaults, as in the cut presets
        cut = dict(nce_idt=not args.no_nce_idt, nce_layers=args.nce_layers,
                   num_patches=args.num_patches or t.num_patches, netf_nc=args.netf_nc or t.netf_nc,
                   nce_loss=functools.partial(patch_nce, temperature=t.nce_t, batch_negatives=args.nce_batch_negatives))
        print()
        print(plan_memory(args.task, args.arch, args.norm, size=args.size, batch=args.batch, amp=args.amp,
                          d_arch=args.d_arch, d_norm=args.d_norm, ngf=args.ngf, ndf=args.ndf, n_layers=args.n_layers,
                          input_nc=args.input_nc, output_nc=args.output_nc, upsample=args.upsample,
                          use_dropout=args.dropout, ema=args.ema, antialias=args.antialias,
                          **(cut if args.task == "cut" else {})).table())
    return 0
