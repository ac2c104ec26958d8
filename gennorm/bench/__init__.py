"""The benchmarks behind `gennorm bench` (gennorm/commands/bench.py: one subcommand per module).

    layers      one conv + norm layer, every norm, ResNet-9 shapes; bytes and GB/s of each
                shared-op kernel (kernels.py)
    train       whole training steps (CycleGAN, pix2pix), per norm
    generator   a whole generator's forward + backward per norm
    profile     per-kernel time of one ResNet residual block
    metrics     FID/KID feature-extraction throughput
    report      README tables from bench layers JSON; merging files
    timing      the shared timing helpers

The bench package sits at the top of the data flow: it may import train, metrics, networks,
layers and ops; nothing in gennorm imports it but its verb. `gennorm bench --help` imports every
subcommand's module (DESCRIPTION, add_arguments), so those import no torch: each benchmark that
needs torch has its code in a NAME_run.py beside NAME.py (imports at the top, torch included),
and NAME.run imports it. kernels.py and timing.py import torch: only the NAME_run modules use them.
"""
