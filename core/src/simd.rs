//! Element-wise loops with the CPU's widest vectors.
//!
//! kiln is compiled for the baseline x86-64 (SSE2: four `f32` lanes), so a
//! loop the compiler vectorises, such as [`crate::kernels::Act::map`], runs
//! four lanes at a time even on a CPU with AVX-512. [`wide`] runs a closure
//! inside a function compiled for AVX-512 (or AVX2 + FMA), chosen at run time
//! like the GEMM's kernels (and capped with them: `KILN_GEMM_KERNEL`,
//! [`crate::cpu::set_gemm_kernel_cap`]); the closure's body, inlined there, is
//! vectorised for that width.
//!
//! The values do not change: the loops are IEEE additions, products,
//! divisions, comparisons and selects, each rounded the same at any width
//! (Rust never contracts `a·b + c` into a fused multiply–add by itself), so
//! results are bitwise those of the baseline build (the tests in
//! `kernels::unary` check it for every function).

use crate::gemm::{kernel_cap, Isa};

/// Runs `f` compiled for the widest vector instructions this CPU has (and
/// the kernel cap allows): [`wide_loop`] around the closure. `f` must be
/// inlined into the wide function to be compiled for it: a small closure is;
/// a large one needs `#[inline(always)]` on the closure (the LSTM cells) or a
/// [`Loop`] of its own. What it calls out of line runs at the baseline width.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    struct Once<F>(F);
    impl<R, F: FnOnce() -> R> Loop for Once<F> {
        type Out = R;
        #[inline(always)]
        fn run(self) -> R {
            (self.0)()
        }
    }
    wide_loop(Once(f))
}

/// A loop for [`wide_loop`]: `run` is `#[inline(always)]`, so it is
/// compiled inside the wide function however large it is (a closure is
/// inlined only when small: one holding `erf` and `exp` polynomials is not).
pub(crate) trait Loop {
    /// What the loop returns.
    type Out;
    /// The loop.
    fn run(self) -> Self::Out;
}

/// Runs `l` inside a function compiled for the widest vector instructions
/// this CPU has and the kernel cap allows, else as compiled.
#[inline(always)]
pub(crate) fn wide_loop<L: Loop>(l: L) -> L::Out {
    #[cfg(target_arch = "x86_64")]
    {
        match width() {
            Isa::Avx512 => {
                // SAFETY: `width` returns `Avx512` only when the CPU reports
                // AVX-512F, AVX2 and FMA, the features `avx512_loop` is compiled for.
                return unsafe { avx512_loop(l) };
            }
            Isa::Avx2 => {
                // SAFETY: `width` returns `Avx2` only when the CPU reports AVX2
                // and FMA, the features `avx2_loop` is compiled for.
                return unsafe { avx2_loop(l) };
            }
            Isa::Portable => {}
        }
    }
    l.run()
}

/// Whether [`wide`] runs at AVX-512 width here: AVX-512F (with AVX2 and
/// FMA) present and allowed by the kernel cap (`KILN_GEMM_KERNEL`). The
/// hand-written AVX-512 kernels outside the GEMM (direct convolutions, 2×2
/// max pooling, the GEMM's transposed packing) follow the same choice, so
/// one cap turns them all off. Always false off x86-64.
pub(crate) fn avx512() -> bool {
    width() == Isa::Avx512
}

/// The instruction set [`wide`] compiles for on this CPU.
pub fn width() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let cap = kernel_cap();
        let (avx2, fma) = (
            is_x86_feature_detected!("avx2"),
            is_x86_feature_detected!("fma"),
        );
        if cap >= Isa::Avx512 && avx2 && fma && is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if cap >= Isa::Avx2 && avx2 && fma {
            return Isa::Avx2;
        }
    }
    let _ = kernel_cap;
    Isa::Portable
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_loop<L: Loop>(l: L) -> L::Out {
    l.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_loop<L: Loop>(l: L) -> L::Out {
    l.run()
}

/// Helpers for the tests that check a loop through [`wide`] against the
/// baseline width (`kernels::unary`, `batchnorm`, `optim`, `conv`).
#[cfg(test)]
pub(crate) mod testing {
    use crate::elem::Elem;

    /// Runs `f` with this thread's kernel cap at the portable ISA, so that
    /// [`super::wide`] runs its loop as compiled: the baseline width. Only
    /// this thread is capped: the loops under test must stay below the
    /// pool's threshold (`PAR_MIN`) so that they run here.
    pub(crate) fn at_baseline_width<R>(f: impl FnOnce() -> R) -> R {
        crate::gemm::with_kernel_cap(crate::gemm::Isa::Portable, f)
    }

    /// The bits of each value (as f64, exact for f32), for `assert_eq!`.
    pub(crate) fn bits<E: Elem>(v: &[E]) -> Vec<u64> {
        v.iter().map(|x| x.f64().to_bits()).collect()
    }
}
