//! The machine's `f32` FMA peak at the vector width of the GEMM kernel in
//! use: the ceiling a product's GFLOP/s is measured against.
//!
//! Each thread runs 12 independent chains of fused multiply–adds on whole
//! vectors (`acc = acc·a + b`), enough to cover the FMA latency (4 cycles)
//! times the FMA ports (2) with room to spare, and no memory traffic. A
//! vector FMA counts `2 · lanes` FLOPs. `threads` OS threads start together
//! behind a barrier; the rate is the total FLOPs over the slowest thread's
//! time, the best of three tries (the machine may be shared).

use super::kernels::Isa;
use std::sync::Barrier;
use std::time::Instant;

/// Independent accumulator chains per thread.
const CHAINS: usize = 12;

/// Measured `f32` FMA peak in GFLOP/s of `threads` threads using `isa`'s
/// vectors (16 lanes for AVX-512, 8 for AVX2), or `None` when the CPU lacks
/// `isa` or `isa` is [`Isa::Portable`] (no vector FMA to measure). About
/// 0.1 s per try on a 3 GHz core.
pub fn fma_peak_gflops(isa: Isa, threads: usize) -> Option<f64> {
    let lanes = lanes(isa)?;
    let threads = threads.max(1);
    let iters: u64 = 20_000_000;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let barrier = Barrier::new(threads);
        let secs = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let t = Instant::now();
                        std::hint::black_box(chains(isa, iters));
                        t.elapsed().as_secs_f64()
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or(f64::INFINITY))
                .fold(0.0f64, f64::max)
        });
        let flops = (threads as u64 * iters * CHAINS as u64 * 2 * lanes as u64) as f64;
        best = best.max(flops / secs / 1e9);
    }
    Some(best)
}

/// `f32` lanes of `isa`'s vectors, if this CPU runs it.
fn lanes(isa: Isa) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            Isa::Avx512 if super::avx512::available() => return Some(16),
            Isa::Avx2 if super::kernels::avx2::available() => return Some(8),
            _ => {}
        }
    }
    let _ = isa;
    None
}

/// Runs the chains (only called after [`lanes`] found the ISA).
fn chains(isa: Isa, iters: u64) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            // SAFETY: `lanes` returned `Some` for this ISA, so the CPU has AVX-512F.
            Isa::Avx512 => return unsafe { chains_avx512(iters) },
            // SAFETY: `lanes` returned `Some` for this ISA, so the CPU has AVX2 and FMA.
            Isa::Avx2 => return unsafe { chains_avx2(iters) },
            Isa::Portable => {}
        }
    }
    let _ = (isa, iters);
    0.0
}

/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chains_avx512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_ps(0.999_999);
    let b = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_fmadd_ps(*r, a, b);
        }
    }
    acc.iter().map(|&r| _mm512_reduce_add_ps(r)).sum()
}

/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chains_avx2(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm256_fmadd_ps(*r, a, b);
        }
    }
    let mut out = [0.0f32; 8];
    let mut s = 0.0;
    for r in acc {
        _mm256_storeu_ps(out.as_mut_ptr(), r);
        s += out.iter().sum::<f32>();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_measures_what_the_cpu_has() {
        assert_eq!(fma_peak_gflops(Isa::Portable, 1), None);
        for isa in [Isa::Avx2, Isa::Avx512] {
            match (lanes(isa), fma_peak_gflops(isa, 1)) {
                (Some(l), Some(g)) => {
                    // A vector FMA unit of any CPU that has the ISA does more
                    // than one vector FMA per 10 ns, and fewer than 64 per ns.
                    let l = l as f64;
                    assert!(
                        g > 2.0 * l * 0.1 && g < 2.0 * l * 64.0,
                        "{isa:?}: {g} GFLOP/s"
                    );
                }
                (None, None) => eprintln!("{isa:?}: not on this CPU, skipped"),
                other => panic!("{isa:?}: {other:?}"),
            }
        }
    }
}
