"""PyTorch timings for `npm run bench` (run only when `import torch` works): the conv micro-benchmarks,
min and median of 3 runs after a warm-up, on CPU with the same thread count. Prints one line per workload.
The full UX-Net needs the official MASILab/3DUX-Net code, which is not vendored here, so only the
micro-benchmarks are timed."""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=3)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)


def bench(name, fn, gflop):
    with torch.no_grad():
        fn()
        ts = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    rate = f"{gflop / med:.0f} GFLOP/s" if gflop else ""
    print(f"{name}: min {min(ts):.3f} s, median {med:.3f} s {rate}")


x = torch.randn(1, 48, 96, 96, 96)
w = torch.randn(48, 48, 3, 3, 3) * 0.05
bench("conv3x3", lambda: F.conv3d(x, w, padding=1), 2 * 48 * 48 * 27 * 96**3 / 1e9)
xd = torch.randn(1, 48, 48, 48, 48)
wd = torch.randn(48, 1, 7, 7, 7) * 0.05
bench("dw7", lambda: F.conv3d(xd, wd, padding=3, groups=48), 2 * 48 * 343 * 48**3 / 1e9)
xt = torch.randn(1, 96, 48, 48, 48)
wt = torch.randn(96, 48, 2, 2, 2) * 0.05
bench("convT", lambda: F.conv_transpose3d(xt, wt, stride=2), 2 * 96 * 48 * 8 * 48**3 / 1e9)
bench("norm", lambda: F.leaky_relu(F.instance_norm(x), 0.01), 0)
