"""`gennorm import junyanz|cut CHECKPOINT OUT_DIR`: a pytorch-CycleGAN-and-pix2pix or CUT checkpoint as a model folder.

The folder is what `gennorm export` writes (config.yaml, generator.safetensors, card.md; plus
discriminator.safetensors with --netD), so translate, eval, the demo, `gennorm.load` and
fine-tuning (`model.init_from=OUT_DIR`) take it like any gennorm model (gennorm.train.imported).
"""
from __future__ import annotations

import sys

from gennorm.commands._types import positive_int

DESCRIPTION = """\
Import a checkpoint of pytorch-CycleGAN-and-pix2pix (junyanz) or of contrastive-unpaired-translation
(cut: CUT / FastCUT, taesungp) as a gennorm model folder.

CHECKPOINT is a .pth file saved by that project (net.state_dict(), e.g. latest_net_G.pth) or
its checkpoints/NAME folder (then --epoch and --which pick the file: latest_net_G.pth,
latest_net_G_A.pth, ...). The options use that project's names; the ones left out are
inferred from the weights (dropout cannot be: it is assumed on for U-Nets, off for ResNets as
in its pix2pix and CycleGAN defaults) and what was inferred is printed. Wrong options stop
with a line naming the layer that does not fit. CUT's antialiasing (its default, or
--no_antialias / --no_antialias_up) is read from the blur filters its checkpoints hold.

examples:
  gennorm import junyanz checkpoints/facades_pix2pix/latest_net_G.pth models/facades
  gennorm import junyanz checkpoints/horse2zebra_cyclegan models/h2z --which G_A
  gennorm import junyanz latest_net_G.pth models/maps --netG unet_256 --norm batch --ngf 64 \\
      --netD basic --checkpoint_D latest_net_D.pth       # D too, for fine-tuning
  gennorm translate models/facades data/facades/test out/ --aligned
  gennorm import cut checkpoints/horse2zebra_cut/latest_net_G.pth models/h2z-cut
"""

SOURCES = ("junyanz", "cut")


def add_arguments(parser) -> None:
    parser.add_argument("source", choices=SOURCES, help="the project the checkpoint comes from: junyanz "
                        "(pytorch-CycleGAN-and-pix2pix) or cut (contrastive-unpaired-translation)")
    parser.add_argument("checkpoint", help=".pth file, or a checkpoints/NAME folder")
    parser.add_argument("out", help="model folder to write")
    parser.add_argument("--netG", choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    parser.add_argument("--norm", choices=("instance", "batch", "none"))
    parser.add_argument("--ngf", type=positive_int)
    parser.add_argument("--input_nc", type=positive_int)
    parser.add_argument("--output_nc", type=positive_int)
    drop = parser.add_mutually_exclusive_group()
    drop.add_argument("--no_dropout", action="store_true", help="the generator has no dropout")
    drop.add_argument("--dropout", action="store_true", help="the generator has dropout (U-Net / ResNet blocks)")
    parser.add_argument("--model", choices=("pix2pix", "cycle_gan", "cut"), default=None,
                        help="the task (default: cut for cut's checkpoints, else pix2pix for U-Nets, cycle_gan "
                        "for ResNets)")
    parser.add_argument("--epoch", default="latest", help="with a folder: which epoch's files (default latest)")
    parser.add_argument("--which", default=None, help="with a folder: G, G_A or G_B (default: G, else G_A)")
    parser.add_argument("--netD", choices=("basic", "n_layers", "pixel"), help="also import a discriminator")
    parser.add_argument("--checkpoint_D", help="the D .pth (default with a folder: EPOCH_net_D[_A].pth)")
    parser.add_argument("--ndf", type=positive_int)
    parser.add_argument("--n_layers_D", type=positive_int)


def run(args) -> int:
    from gennorm.train.imported import import_junyanz

    dropout = True if args.dropout else (False if args.no_dropout else None)
    imported = import_junyanz(args.checkpoint, args.out, args.model, epoch=args.epoch, which=args.which,
                              netG=args.netG, norm=args.norm, ngf=args.ngf, input_nc=args.input_nc,
                              output_nc=args.output_nc, dropout=dropout, netD=args.netD,
                              checkpoint_D=args.checkpoint_D, ndf=args.ndf, n_layers_D=args.n_layers_D,
                              project=args.source)
    print(imported.describe(args.out), file=sys.stderr)
    return 0
