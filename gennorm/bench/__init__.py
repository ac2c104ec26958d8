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
layers and ops; nothing in gennorm imports it but its verb. Each module's DESCRIPTION and
add_arguments import no torch (its `run` does), so `gennorm bench --help` stays cheap.
"""
