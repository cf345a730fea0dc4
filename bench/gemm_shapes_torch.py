"""torch.mm on the LSTM-shaped products of examples/gemm_ab.rs (same shapes,
same transposes as strides, f32), median of `reps` calls per round, median
over rounds. Usage: python bench/gemm_shapes_torch.py [threads] [rounds]"""
import os, sys, time
threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
import torch
torch.set_num_threads(threads)
SHAPES = [
    ("fwd recurrent h·W_hhᵀ", 32, 2048, 512, False, True),
    ("fwd input x·W_ihᵀ (I=512)", 3200, 2048, 512, False, True),
    ("fwd input x·W_ihᵀ (I=64)", 3200, 2048, 64, False, True),
    ("bwd recurrent dA·W_hh", 32, 512, 2048, False, False),
    ("bwd dX = dA·W_ih (I=512)", 3200, 512, 2048, False, False),
    ("bwd dX = dA·W_ih (I=64)", 3200, 64, 2048, False, False),
    ("bwd dW_ih = dAᵀ·x (I=512)", 2048, 512, 3200, True, False),
    ("bwd dW_ih = dAᵀ·x (I=64)", 2048, 64, 3200, True, False),
    ("bwd dW_hh per sample", 2048, 512, 99, True, False),
    ("square 1024³", 1024, 1024, 1024, False, False),
]
print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {threads} threads")
print("| product | m×n×k | torch.mm | GFLOP/s |")
print("|---|---|---|---|")
for label, m, n, k, ta, tb in SHAPES:
    a = torch.rand(k, m).t() if ta else torch.rand(m, k)
    b = torch.rand(n, k).t() if tb else torch.rand(k, n)
    c = torch.empty(m, n)
    reps = int(min(200, max(5, 2e9 / (2 * m * n * k))))
    torch.mm(a, b, out=c)
    meds = []
    for _ in range(rounds):
        ts = []
        for _ in range(reps):
            s = time.perf_counter(); torch.mm(a, b, out=c); ts.append(time.perf_counter() - s)
        ts.sort(); meds.append(ts[reps // 2])
    meds.sort(); t = meds[rounds // 2]
    print(f"| {label} | {m}×{n}×{k} | {t*1e6:.1f} µs | {2*m*n*k/t/1e9:.0f} |")
