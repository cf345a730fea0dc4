//! The CPU device's core ([`Backend`]): memory, kiln's own GEMM
//! (`crate::gemm`), element-wise maps and reductions, on kiln's pool where a
//! buffer is large enough to pay for it. The kernel families' CPU bodies are in
//! `crate::kernels`. Every reduction runs in a fixed order, so results depend only on
//! the inputs and the thread count.

use crate::device::{Acc, Act, Backend, Block, Device, Gemm, GemmBatched, PackedB};
use crate::elem::{Elem, Scalar};
use crate::error::{Error, Result};
use crate::gemm::par::{self};

/// The CPU. Zero-sized; buffers are `Vec`s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu;

impl Device for Cpu {
    type Buf<T: Scalar> = Vec<T>;
    fn name(&self) -> String {
        "cpu".into()
    }
}

/// The number of threads the CPU kernels use (rayon's global pool: what
/// [`crate::set_threads`] set, or `RAYON_NUM_THREADS`, or one per core).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Which matrix-product implementation [`Backend::gemm`] uses on the CPU.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmImpl {
    /// kiln's own (`core/src/gemm`): packing buffers reused, no allocation.
    Kiln,
    /// The `gemm` crate (allocates its packing buffers on every call).
    GemmCrate,
}

static GEMM_IMPL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Chooses the CPU's matrix-product implementation (for benchmarks that
/// compare them; the default, [`GemmImpl::Kiln`], is the one to use).
#[doc(hidden)]
pub fn set_gemm_impl(i: GemmImpl) {
    GEMM_IMPL.store(i as u8, std::sync::atomic::Ordering::Relaxed);
}

/// The CPU's matrix-product implementation.
#[doc(hidden)]
pub fn gemm_impl() -> GemmImpl {
    if GEMM_IMPL.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        GemmImpl::Kiln
    } else {
        GemmImpl::GemmCrate
    }
}

/// The microkernel kiln's GEMM uses for `E` on this CPU (`AVX-512F 12×32`,
/// `AVX2+FMA 6×16`, …).
pub fn gemm_kernel_name<E: Elem>() -> &'static str {
    crate::gemm::kernel_name::<E>()
}

pub use crate::gemm::Isa as GemmIsa;

/// The instruction set of kiln's GEMM kernel for `E` on this CPU (after
/// any cap): the vector width [`fma_peak_gflops`] should measure.
pub fn gemm_kernel_isa<E: Elem>() -> GemmIsa {
    crate::gemm::kernel_isa::<E>()
}

/// The machine's measured `f32` FMA peak in GFLOP/s for `threads` threads
/// using `isa`'s vectors (12 independent FMA chains per thread, no memory
/// traffic; best of three ≈ 0.1 s tries), or `None` for the portable kernel
/// or an ISA this CPU lacks. `examples/bench` states every GFLOP/s figure as
/// a share of it.
pub fn fma_peak_gflops(isa: GemmIsa, threads: usize) -> Option<f64> {
    crate::gemm::fma_peak_gflops(isa, threads)
}

/// The instruction set kiln's element-wise loops (the activations' forward
/// and backward passes, the fused bias + activation) are compiled for on this
/// CPU, after any cap ([`set_gemm_kernel_cap`], `KILN_GEMM_KERNEL`). Their
/// values are the same at every width.
pub fn elementwise_isa() -> GemmIsa {
    crate::simd::width()
}

/// Caps the instruction set of kiln's GEMM kernels, process-wide: the widest
/// kernel this CPU runs that is not wider than `cap` (by default the widest
/// it runs; the environment variable `KILN_GEMM_KERNEL=avx2` or `portable`
/// sets the cap at start-up, and this call overrides it). The cap applies to
/// the element-wise loops' vector width too ([`elementwise_isa`]). For
/// comparing the kernels; results differ between GEMM kernels in the last
/// bits (not between element-wise widths).
#[doc(hidden)]
pub fn set_gemm_kernel_cap(cap: GemmIsa) {
    crate::gemm::set_kernel_cap(cap)
}

/// Sets, process-wide, the largest `channels_in · kernel_h · kernel_w` (terms
/// per output) for which a stride-1 `f32` convolution runs the direct kernel
/// (`kiln::kernels::conv_direct`, AVX-512 CPUs) instead of im2col + GEMM; 0
/// turns it off. The default, 288 (32 channels × 3×3), is about where the
/// direct kernel stops being faster (`examples/conv_direct_ab`). For benchmarks that
/// compare the two paths; results differ between them in the last bits.
#[doc(hidden)]
pub fn set_conv_direct_max_taps(n: usize) {
    crate::kernels::conv_direct::set_max_taps(n)
}

/// Element counts below this run on one thread: a hand-off to the pool costs a µs or so.
const PAR_MIN: usize = 1 << 15;
/// Chunk size for parallel element-wise loops.
const CHUNK: usize = 1 << 13;

/// Applies `f(dst_chunk, offset)` to the `CHUNK`-element chunks of `dst`, on
/// kiln's pool (`crate::gemm::par`) when `dst` is large.
#[inline]
pub(crate) fn par_chunks<E: Send, F>(dst: &mut [E], f: F)
where
    F: Fn(&mut [E], usize) + Send + Sync,
{
    let par = dst.len() >= PAR_MIN;
    par::pieces(dst, CHUNK, par, |k, c| f(c, k * CHUNK));
}

/// Calls `f(offset, len)` for the `CHUNK`-element chunks of `0..n`, on the
/// pool when `n` is large (for kernels that write several buffers).
#[inline]
pub(crate) fn par_offsets(n: usize, f: impl Fn(usize, usize) + Sync) {
    par::ranges(n.div_ceil(CHUNK), n >= PAR_MIN, |r| {
        for ci in r {
            let o = ci * CHUNK;
            f(o, CHUNK.min(n - o));
        }
    });
}

fn short(what: &'static str, need: usize, have: usize) -> Error {
    Error::invalid(
        what,
        format!("kiln internal error: buffer holds {have} elements, kernel needs {need}"),
    )
}

#[inline]
/// The error of a host allocation of `n` elements of `T` that failed.
fn alloc_error<T>(n: usize, e: std::collections::TryReserveError) -> Error {
    let size = std::mem::size_of::<T>();
    let bytes = match n.checked_mul(size) {
        Some(b) => format!("{b} bytes"),
        None => "more than usize::MAX bytes".into(),
    };
    Error::Device {
        device: "cpu".into(),
        msg: format!("cannot allocate {n} elements of {size} bytes ({bytes}): {e}"),
    }
}

/// `vec![v; n]`, but a failed allocation is an [`Error::Device`] naming the
/// size instead of an abort.
pub(crate) fn try_vec<T: Clone>(n: usize, v: T) -> Result<Vec<T>> {
    let mut buf = Vec::new();
    try_resize(&mut buf, n, v)?;
    Ok(buf)
}

/// `buf.resize(n, v)`, but a failed allocation is an [`Error::Device`]
/// naming the size instead of an abort (`buf` is then unchanged).
pub(crate) fn try_resize<T: Clone>(buf: &mut Vec<T>, n: usize, v: T) -> Result<()> {
    if n > buf.len() {
        let more = n - buf.len();
        if buf.capacity() == 0 {
            buf.try_reserve_exact(more)
        } else {
            buf.try_reserve(more)
        }
        .map_err(|e| alloc_error::<T>(n, e))?;
    }
    buf.resize(n, v);
    Ok(())
}

fn need<T>(what: &'static str, b: &[T], n: usize) -> Result<()> {
    if b.len() < n {
        Err(short(what, n, b.len()))
    } else {
        Ok(())
    }
}

impl Cpu {
    /// Runs the product on slices (checked by [`Gemm::check`]) through kiln's
    /// GEMM, or the `gemm` crate when that is selected for comparison.
    fn gemm_slices<E: Elem>(g: &Gemm, a: &[E], b: &[E], c: &mut [E]) -> Result<()> {
        Cpu::gemm_slices_epi(g, a, b, c, None, None)
    }

    /// [`Cpu::gemm_slices`] with a dense layer's epilogue on `C` (`c_off = 0`,
    /// `ldc = n`): `C[r, j] += bias[j]`, then `y = f(C)` (see
    /// `gemm::Epi`: applied per tile inside kiln's product, after it on the
    /// other paths; the same values either way).
    fn gemm_slices_epi<E: Elem>(
        g: &Gemm,
        a: &[E],
        b: &[E],
        c: &mut [E],
        bias: Option<&[E]>,
        act: Option<(Act, &mut [E])>,
    ) -> Result<()> {
        let (m, n, k) = (g.m, g.n, g.k);
        g.check(a.len(), b.len(), c.len())?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let with_epi = bias.is_some() || act.is_some();
        if with_epi
            && (g.c_off != 0
                || g.ldc != n
                || bias.is_some_and(|b| b.len() < n)
                || act.as_ref().is_some_and(|(_, y)| y.len() < m * n))
        {
            return Err(Error::invalid(
                "gemm_bias_act",
                "kiln internal error: the epilogue needs a dense C and room for the bias and y",
            ));
        }
        let epi = crate::gemm::Epi {
            bias: bias.map_or(std::ptr::null(), |b| b.as_ptr()),
            f: act.as_ref().map(|(f, _)| *f),
            y: act.map_or(std::ptr::null_mut(), |(_, y)| y.as_mut_ptr()),
        };
        // The epilogue after the whole product, for the paths that are not
        // kiln's blocked one.
        let after = |c: &mut [E]| {
            if with_epi {
                // SAFETY: C is `m × n` dense (`ldc = n`, `c_off = 0`, checked
                // above, inside `c` by `g.check`); the bias holds `n` values and
                // `y` `m·n` (checked above); `y` is a different slice from `c`
                // (two `&mut`), the bias a shared one, so none overlap.
                unsafe { epi.apply(c.as_mut_ptr(), n, 0, 0, m, n) };
            }
        };
        let (a_rs, a_cs) = if g.trans_a {
            (1, g.lda as isize)
        } else {
            (g.lda as isize, 1)
        };
        let (b_rs, b_cs) = if g.trans_b {
            (1, g.ldb as isize)
        } else {
            (g.ldb as isize, 1)
        };
        if k == 0 {
            // C = β·C.
            for i in 0..m {
                for j in 0..n {
                    let x = &mut c[g.c_off + i * g.ldc + j];
                    *x = if g.beta == 0.0 {
                        E::zero()
                    } else {
                        *x * E::of(g.beta)
                    };
                }
            }
            after(c);
            return Ok(());
        }
        #[cfg(not(feature = "gemm-crate"))]
        if gemm_impl() == GemmImpl::GemmCrate {
            return Err(Error::invalid(
                "gemm",
                "GemmImpl::GemmCrate needs kiln's `gemm-crate` feature (build with `--features gemm-crate`)",
            ));
        }
        #[cfg(feature = "gemm-crate")]
        if gemm_impl() == GemmImpl::GemmCrate {
            let par = if rayon::current_num_threads() > 1 {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            };
            // SAFETY: every index the product touches lies inside the slices (checked
            // above); `gemm` computes dst = α_g·dst + β_g·lhs·rhs, so BLAS's (α, β)
            // map to (β, α) here.
            unsafe {
                gemm::gemm::<E>(
                    m,
                    n,
                    k,
                    c.as_mut_ptr().add(g.c_off),
                    1,
                    g.ldc as isize,
                    g.beta != 0.0,
                    a.as_ptr().add(g.a_off),
                    a_cs,
                    a_rs,
                    b.as_ptr().add(g.b_off),
                    b_cs,
                    b_rs,
                    E::of(g.beta),
                    E::of(g.alpha),
                    false,
                    false,
                    false,
                    par,
                );
            }
            after(c);
            return Ok(());
        }
        // SAFETY: every index the product touches lies inside the slices
        // (checked above), and so do the epilogue's (its bias and `y`, checked
        // above, overlap neither C nor each other).
        unsafe {
            crate::gemm::gemm_epi::<E>(
                m,
                n,
                k,
                E::of(g.alpha),
                crate::gemm::Mat {
                    ptr: a.as_ptr().add(g.a_off),
                    rs: a_rs,
                    cs: a_cs,
                },
                crate::gemm::Mat {
                    ptr: b.as_ptr().add(g.b_off),
                    rs: b_rs,
                    cs: b_cs,
                },
                E::of(g.beta),
                c.as_mut_ptr().add(g.c_off),
                g.ldc,
                epi,
            );
        }
        Ok(())
    }
}

impl<E: Elem> Backend<E> for Cpu {
    fn zeros<T: Scalar>(&self, n: usize) -> Result<Vec<T>> {
        try_vec(n, T::default())
    }
    fn len<T: Scalar>(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }
    fn resize<T: Scalar>(&self, buf: &mut Vec<T>, n: usize) -> Result<()> {
        try_resize(buf, n, T::default())
    }
    fn upload<T: Scalar>(&self, src: &[T], dst: &mut Vec<T>) -> Result<()> {
        need("upload", dst, src.len())?;
        dst[..src.len()].copy_from_slice(src);
        Ok(())
    }
    fn download<T: Scalar>(&self, src: &Vec<T>, dst: &mut [T]) -> Result<()> {
        need("download", src, dst.len())?;
        dst.copy_from_slice(&src[..dst.len()]);
        Ok(())
    }
    fn raw_copy(&self, src: &Vec<E>, dst: &mut Vec<E>, n: usize) -> Result<()> {
        dst[..n].copy_from_slice(&src[..n]);
        Ok(())
    }
    fn raw_fill(&self, dst: &mut Vec<E>, n: usize, v: E) -> Result<()> {
        dst[..n].fill(v);
        Ok(())
    }

    fn raw_gemm(&self, g: &Gemm, a: &Vec<E>, b: &Vec<E>, c: &mut Vec<E>) -> Result<()> {
        Cpu::gemm_slices(g, a, b, c)
    }
    fn raw_gemm_bias_act(
        &self,
        g: &Gemm,
        a: &Vec<E>,
        b: &Vec<E>,
        c: &mut Vec<E>,
        bias: Option<&Vec<E>>,
        act: Option<(Act, &mut Vec<E>)>,
    ) -> Result<()> {
        Cpu::gemm_slices_epi(
            g,
            a,
            b,
            c,
            bias.map(|b| b.as_slice()),
            act.map(|(f, y)| (f, y.as_mut_slice())),
        )
    }
    fn raw_pack_gemm_b(&self, g: &Gemm, b: &Vec<E>, packed: &mut PackedB<E>) -> Result<()> {
        if gemm_impl() == GemmImpl::GemmCrate {
            packed.clear();
            return Ok(());
        }
        crate::gemm::pack_gemm_b_slices(g, b, packed)
    }
    fn raw_gemm_packed_b(
        &self,
        g: &Gemm,
        a: &Vec<E>,
        b: &Vec<E>,
        packed: &PackedB<E>,
        c: &mut Vec<E>,
    ) -> Result<()> {
        if gemm_impl() == GemmImpl::GemmCrate {
            return Cpu::gemm_slices(g, a, b, c);
        }
        crate::gemm::gemm_packed_b_slices(g, a, b, packed, c)
    }
    fn raw_gemm_batched(
        &self,
        g: &GemmBatched,
        a: &Vec<E>,
        b: &Vec<E>,
        c: &mut Vec<E>,
    ) -> Result<()> {
        // One product after another through kiln's GEMM, which parallelises
        // each product itself; the products write disjoint parts of C
        // (`GemmBatched::check`), so the order does not change any value.
        for i in 0..g.batch {
            let p = g.product(i).ok_or_else(|| {
                Error::invalid("gemm_batched", "kiln internal error: offset overflow")
            })?;
            Cpu::gemm_slices(&p, a, b, c)?;
        }
        Ok(())
    }
    fn raw_add_bias(&self, y: &mut Vec<E>, b: &Vec<E>, rows: usize, cols: usize) -> Result<()> {
        let b = &b[..cols];
        for row in y[..rows * cols].chunks_exact_mut(cols) {
            for (v, bb) in row.iter_mut().zip(b) {
                *v = *v + *bb;
            }
        }
        Ok(())
    }
    fn raw_bias_grad(
        &self,
        dy: &Vec<E>,
        db: &mut Vec<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let db = &mut db[..cols];
        if acc == Acc::Set {
            db.fill(E::zero());
        }
        for row in dy[..rows * cols].chunks_exact(cols) {
            for (d, v) in db.iter_mut().zip(row) {
                *d = *d + *v;
            }
        }
        Ok(())
    }

    fn raw_act_fwd(&self, f: Act, x: &Vec<E>, y: &mut Vec<E>, n: usize) -> Result<()> {
        let x = &x[..n];
        // The function is matched once per chunk, outside the loop (`Act::map`),
        // so each loop vectorises.
        par_chunks(&mut y[..n], |c, o| f.map(&x[o..o + c.len()], c));
        Ok(())
    }
    fn raw_act_bwd(
        &self,
        f: Act,
        x: &Vec<E>,
        y: &Vec<E>,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        par_chunks(&mut dx[..n], |c, o| {
            let l = c.len();
            f.map_grad(&x[o..o + l], &y[o..o + l], &dy[o..o + l], c, acc);
        });
        Ok(())
    }
    fn raw_add(&self, a: &Vec<E>, b: &Vec<E>, y: &mut Vec<E>, n: usize) -> Result<()> {
        par_chunks(&mut y[..n], |c, o| {
            let (a, b) = (&a[o..o + c.len()], &b[o..o + c.len()]);
            c.iter_mut()
                .zip(a.iter().zip(b))
                .for_each(|(v, (a, b))| *v = *a + *b);
        });
        Ok(())
    }
    fn raw_axpy(&self, alpha: E, src: &Vec<E>, dst: &mut Vec<E>, n: usize, acc: Acc) -> Result<()> {
        par_chunks(&mut dst[..n], |c, o| {
            let s = &src[o..o + c.len()];
            match acc {
                Acc::Set => c.iter_mut().zip(s).for_each(|(v, s)| *v = alpha * *s),
                Acc::Add => c.iter_mut().zip(s).for_each(|(v, s)| *v = *v + alpha * *s),
            }
        });
        Ok(())
    }
    fn raw_copy_block(&self, b: &Block, src: &Vec<E>, dst: &mut Vec<E>, acc: Acc) -> Result<()> {
        for r in 0..b.rows {
            let s = &src[r * b.src_ld + b.src_off..][..b.cols];
            let d = &mut dst[r * b.dst_ld + b.dst_off..][..b.cols];
            match acc {
                Acc::Set => d.copy_from_slice(s),
                Acc::Add => d.iter_mut().zip(s).for_each(|(d, s)| *d = *d + *s),
            }
        }
        Ok(())
    }

    // Training-toolkit kernels: optimizer bodies in `crate::optim`, loss bodies
    // in `crate::loss::distribution`.

    fn raw_sum_sq(&self, x: &Vec<E>, n: usize) -> Result<f64> {
        Ok(chunked_sum(&x[..n], |v| v.f64() * v.f64()))
    }
    fn raw_sum_abs(&self, x: &Vec<E>, n: usize) -> Result<f64> {
        Ok(chunked_sum(&x[..n], |v| v.f64().abs()))
    }
}

/// `Σ f(x_i)` in `f64`: per-chunk sums (on kiln's pool when large), then the
/// chunk sums in order, so the result depends only on the length. The chunk
/// sums go into a buffer of the calling thread that grows once and is reused,
/// so a reduction allocates nothing after the first of its size (gradient
/// clipping runs one per parameter per step).
fn chunked_sum<E: Elem>(x: &[E], f: impl Fn(E) -> f64 + Sync) -> f64 {
    let part = |c: &[E]| c.iter().map(|v| f(*v)).sum::<f64>();
    if x.len() < PAR_MIN {
        return x.chunks(CHUNK).map(part).sum();
    }
    thread_local! {
        static PARTS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let count = x.len().div_ceil(CHUNK);
    PARTS.with(|parts| {
        let mut parts = parts.borrow_mut();
        if parts.len() < count {
            parts.resize(count, 0.0);
        }
        par::pieces(&mut parts[..count], 1, true, |k, p| {
            let start = k * CHUNK;
            p[0] = part(&x[start..(start + CHUNK).min(x.len())]);
        });
        parts[..count].iter().sum()
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod gemm_batched_tests;
