"""The benchmarks behind `gennorm bench` (their command line: gennorm/commands/bench.py).

    layers      one conv + norm layer, every norm, ResNet-9 shapes; bytes and GB/s of each
                shared-op kernel (kernels.py); its shapes and candidate names in specs.py
    train       whole training steps (CycleGAN, pix2pix), per norm
    generator   a whole generator's forward + backward per norm
    profile     per-kernel time of one ResNet residual block
    metrics     FID/KID feature-extraction throughput
    report      README tables from bench layers JSON; merging files
    timing      the shared timing helpers

One module per benchmark, its imports (torch included) at the top, run(args) its entry point.
gennorm/commands/bench.py holds every subcommand's help text and options and imports a benchmark
module only inside that subcommand's run, so `gennorm bench --help` imports no torch; of this
package it imports only specs.py (torch-free: the layer shapes and candidate names of `bench
layers`). The bench package sits at the top of the data flow: it may import train, metrics,
networks, layers and ops; nothing in gennorm imports it but its verb.
"""
