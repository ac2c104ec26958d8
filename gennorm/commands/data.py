"""`gennorm data`: write the built-in scenes dataset (paired and unpaired layouts; gennorm.data.scenes),
or fetch a standard pix2pix / CycleGAN / CUT dataset (gennorm.data.fetch)."""
from __future__ import annotations

import argparse

from gennorm.commands._types import int_at_least

DESCRIPTION = """\
Write gennorm's built-in labels -> photo dataset in the standard layouts, in seconds, offline.

  OUT/paired/{train,test}/NNNN.png            A|B side by side (pix2pix, mode 'aligned')
  OUT/unpaired/{trainA,trainB,testA,testB}/   CycleGAN layout (mode 'unaligned');
                                              A from even scenes, B from odd ones
  OUT/scenes.json, OUT/README.txt             parameters and class legend

A is a colour-coded label map (sky, grass, sand, water, road, building, tree, rock), B a photo
rendered from scikit-image's bundled textures. Same arguments -> byte-identical files. The
test split is the last --test-count scenes (default 15%, at least 2: 400 -> 340 / 60).
Re-running with the same arguments on an existing OUT does nothing.

examples:
  gennorm data scenes data/scenes
  gennorm data scenes data/scenes64 --size 64 --count 200 --seed 1
  gennorm data scenes data/scenes --count 1000 --test-count 100 --overwrite
"""

FETCH_DESCRIPTION = """\
Download a standard pix2pix / CycleGAN / CUT dataset into ROOT/NAME (default ROOT: datasets).

The download continues where it stopped when rerun (ROOT/NAME.EXT.partial); the archive is
extracted beside ROOT/NAME, its layout checked, then moved into place, with ROOT/NAME/SOURCE.json
(url, sha256, bytes, date). A failed download leaves no dataset folder. Where the host is
blocked, --mirror URL (or GENNORM_DATA_MIRROR) replaces scheme and host, keeping the path; or
download the archive by hand and pass it with --archive FILE.

examples:
  gennorm data fetch --list
  gennorm data fetch facades                      # -> datasets/facades/{train,val,test}
  gennorm data fetch horse2zebra data             # -> data/horse2zebra/{trainA,trainB,testA,testB}
  gennorm data fetch horse2zebra --mirror http://mirror.example.org
  gennorm data fetch horse2zebra --archive ~/Downloads/horse2zebra.zip
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    scenes = sub.add_parser("scenes", help="write the built-in scenes dataset to OUT",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    scenes.add_argument("out", metavar="OUT", help="output folder (created; must be new, empty or a scenes dataset)")
    scenes.add_argument("--size", type=int_at_least(16), default=128, help="image side in pixels (default 128)")
    scenes.add_argument("--count", type=int_at_least(4), default=400, help="number of scenes (default 400)")
    scenes.add_argument("--test-count", type=int_at_least(2), default=None, metavar="N",
                        help="scenes in the test split (default round(0.15 * count), at least 2)")
    scenes.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    scenes.add_argument("--overwrite", action="store_true",
                        help="replace a scenes dataset with other parameters at OUT")
    fetch = sub.add_parser("fetch", help="download a standard pix2pix / CycleGAN / CUT dataset",
                           description=FETCH_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    fetch.add_argument("name", metavar="NAME", nargs="?", help="dataset name (--list shows them)")
    fetch.add_argument("root", metavar="ROOT", nargs="?", default="datasets", help="parent folder (default datasets)")
    fetch.add_argument("--list", action="store_true", help="list the datasets: kind, size, layout, source, URL")
    fetch.add_argument("--mirror", metavar="URL", default=None,
                       help="replace the download host (default: $GENNORM_DATA_MIRROR, else the original host)")
    fetch.add_argument("--archive", metavar="FILE", default=None, help="use this downloaded archive instead")
    fetch.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive in ROOT")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        return run_fetch(args)
    from gennorm.data.scenes import write_scenes
    from gennorm.errors import ConfigError

    if args.test_count is not None and args.test_count > args.count - 2:
        raise ConfigError(f"--test-count {args.test_count} leaves fewer than 2 training scenes of --count {args.count}")
    meta, seconds = write_scenes(args.out, size=args.size, count=args.count, seed=args.seed,
                                 test_count=args.test_count, overwrite=args.overwrite)
    done = "already there, left as is" if seconds is None else f"in {seconds:.1f}s"
    print(f"{args.out}: {meta['count']} scenes of {meta['size']}px ({meta['train_count']} train / "
          f"{meta['test_count']} test, seed {meta['seed']}) {done}")
    print(f"  paired:   {args.out}/paired/{{train,test}}       (create_dataset('aligned', ...))")
    print(f"  unpaired: {args.out}/unpaired/{{trainA,...}}     (create_dataset('unaligned', ...))")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from gennorm.data.fetch import fetch, lookup, registry_table
    from gennorm.errors import ConfigError

    if args.list:
        print(registry_table())
        return 0
    if args.name is None:
        raise ConfigError("gennorm data fetch: give a dataset NAME, or --list to see them")
    folder, fetched = fetch(args.name, args.root, archive=args.archive, mirror=args.mirror,
                            progress=not args.quiet, keep_archive=args.keep_archive)
    done = "fetched" if fetched else "already there (SOURCE.json), left as is"
    print(f"{folder}: {args.name} {done}; layout {lookup(args.name).layout}")
    return 0
