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

/// Caps the instruction set of kiln's GEMM kernels, process-wide: the widest
/// kernel this CPU runs that is not wider than `cap` (by default the widest
/// it runs; the environment variable `KILN_GEMM_KERNEL=avx2` or `portable`
/// sets the cap at start-up, and this call overrides it). For comparing the
/// kernels; results differ between kernels in the last bits.
#[doc(hidden)]
pub fn set_gemm_kernel_cap(cap: GemmIsa) {
    crate::gemm::set_kernel_cap(cap)
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
        let (m, n, k) = (g.m, g.n, g.k);
        g.check(a.len(), b.len(), c.len())?;
        if m == 0 || n == 0 {
            return Ok(());
        }
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
            return Ok(());
        }
        // SAFETY: every index the product touches lies inside the slices (checked above).
        unsafe {
            crate::gemm::gemm::<E>(
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
mod tests {
    use super::*;

    /// Naive reference product with the same sub-matrix semantics.
    fn naive(g: &Gemm, a: &[f64], b: &[f64], c: &mut [f64]) {
        for i in 0..g.m {
            for j in 0..g.n {
                let mut s = 0.0;
                for p in 0..g.k {
                    let av = if g.trans_a {
                        a[g.a_off + p * g.lda + i]
                    } else {
                        a[g.a_off + i * g.lda + p]
                    };
                    let bv = if g.trans_b {
                        b[g.b_off + j * g.ldb + p]
                    } else {
                        b[g.b_off + p * g.ldb + j]
                    };
                    s += av * bv;
                }
                let cv = &mut c[g.c_off + i * g.ldc + j];
                *cv = g.alpha * s + g.beta * *cv;
            }
        }
    }

    #[test]
    fn gemm_matches_naive_for_all_transposes_and_offsets() {
        let mut seed = 1u64;
        let mut r = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
            for &beta in &[0.0, 1.0, 0.5] {
                let (m, n, k) = (7, 5, 9);
                let mut g = Gemm::dense(m, n, k, ta, tb);
                g.beta = beta;
                g.alpha = 1.5;
                g.a_off = 3;
                g.lda += 2;
                g.c_off = 1;
                g.ldc += 4;
                let a: Vec<f64> = (0..200).map(|_| r()).collect();
                let b: Vec<f64> = (0..200).map(|_| r()).collect();
                let c0: Vec<f64> = (0..200).map(|_| r()).collect();
                let mut c1 = c0.clone();
                let mut c2 = c0.clone();
                Cpu::gemm_slices(&g, &a, &b, &mut c1).unwrap();
                naive(&g, &a, &b, &mut c2);
                for (x, y) in c1.iter().zip(&c2) {
                    assert!((x - y).abs() < 1e-12, "{ta} {tb} {beta}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn gemm_rejects_short_buffers() {
        let g = Gemm::dense(4, 4, 4, false, false);
        let a = vec![0.0f32; 15];
        let b = vec![0.0f32; 16];
        let mut c = vec![0.0f32; 16];
        assert!(Cpu::gemm_slices(&g, &a, &b, &mut c).is_err());
    }

    /// A leading dimension below the row length would make rows overlap (for
    /// `C`, two threads of the parallel split would then write one element):
    /// rejected for each operand, through the safe `Backend::gemm`, with the
    /// buffers left as they were.
    #[test]
    fn gemm_rejects_leading_dimensions_below_the_row_length() {
        let dev = Cpu;
        let (m, n, k) = (64, 64, 64);
        let a = vec![1.0f32; m * k];
        let b = vec![1.0f32; k * n];
        let cases = [
            (
                "gemm A",
                "lda",
                Gemm {
                    lda: k - 1,
                    ..Gemm::dense(m, n, k, false, false)
                },
            ),
            (
                "gemm A",
                "lda",
                Gemm {
                    lda: m - 1,
                    ..Gemm::dense(m, n, k, true, false)
                },
            ),
            (
                "gemm B",
                "ldb",
                Gemm {
                    ldb: n - 1,
                    ..Gemm::dense(m, n, k, false, false)
                },
            ),
            (
                "gemm B",
                "ldb",
                Gemm {
                    ldb: k - 1,
                    ..Gemm::dense(m, n, k, false, true)
                },
            ),
            (
                "gemm C",
                "ldc",
                Gemm {
                    ldc: n - 1,
                    ..Gemm::dense(m, n, k, false, false)
                },
            ),
            (
                "gemm C",
                "ldc",
                Gemm {
                    ldc: 1,
                    ..Gemm::dense(m, n, k, false, false)
                },
            ),
        ];
        for (what, ld, g) in cases {
            let mut c = vec![7.0f32; m * n];
            let err = dev.gemm(&g, &a, &b, &mut c).unwrap_err().to_string();
            assert!(err.contains(what) && err.contains(ld), "{err}");
            assert!(err.contains("smaller than the row length"), "{err}");
            assert!(
                c.iter().all(|&v| v == 7.0),
                "C was written before the check"
            );
        }
        // Equal leading dimensions and larger ones (sub-matrices) still work.
        let g = Gemm {
            ldc: n + 3,
            ..Gemm::dense(m, n, k, false, false)
        };
        let mut c = vec![0.0f32; (m - 1) * (n + 3) + n];
        dev.gemm(&g, &a, &b, &mut c).unwrap();
        assert_eq!(c[(m - 1) * (n + 3) + n - 1], k as f32);
        assert_eq!(c[n], 0.0, "the gap between rows of C is not written");
    }
}

#[cfg(test)]
mod gemm_batched_tests {
    use crate::device::{Backend, Gemm, GemmBatched};
    use crate::{rng, Cpu};
    use rand::Rng as _;

    /// `C_i = α·op(A_i)·op(B_i) + β·C_i` by the definition, in f64.
    fn naive(g: &GemmBatched, a: &[f64], b: &[f64], c: &mut [f64]) {
        let p = &g.gemm;
        for t in 0..g.batch {
            let (ao, bo, co) = (
                p.a_off + t * g.stride_a,
                p.b_off + t * g.stride_b,
                p.c_off + t * g.stride_c,
            );
            for i in 0..p.m {
                for j in 0..p.n {
                    let mut s = 0.0;
                    for l in 0..p.k {
                        let av = if p.trans_a {
                            a[ao + l * p.lda + i]
                        } else {
                            a[ao + i * p.lda + l]
                        };
                        let bv = if p.trans_b {
                            b[bo + j * p.ldb + l]
                        } else {
                            b[bo + l * p.ldb + j]
                        };
                        s += av * bv;
                    }
                    let cv = &mut c[co + i * p.ldc + j];
                    *cv = p.alpha * s + if p.beta == 0.0 { 0.0 } else { p.beta * *cv };
                }
            }
        }
    }

    fn span(off: usize, rows: usize, ld: usize, cols: usize) -> usize {
        off + (rows - 1) * ld + cols
    }

    /// Strided-batched products against the definition, through every GEMM
    /// kernel this CPU runs (AVX-512, AVX2, portable).
    #[test]
    fn matches_a_loop_of_gemm_and_the_definition() {
        for cap in crate::gemm::available_caps() {
            crate::gemm::with_kernel_cap(cap, batched_matches);
        }
    }

    fn batched_matches() {
        let mut r = rng(5);
        let mut cases = 0;
        for &(m, n, k, batch) in &[
            (1, 1, 1, 1),
            (3, 5, 4, 4),
            (7, 2, 9, 3),
            (16, 16, 8, 5),
            (40, 70, 33, 2),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for (bcast_a, bcast_b) in [(false, false), (true, false), (false, true)] {
                        for beta in [0.0, 1.0] {
                            let mut g = Gemm::dense(m, n, k, ta, tb);
                            g.alpha = 0.75;
                            g.beta = beta;
                            g.a_off = r.random_range(0..4);
                            g.b_off = r.random_range(0..4);
                            g.c_off = r.random_range(0..4);
                            g.lda += r.random_range(0..3);
                            g.ldb += r.random_range(0..3);
                            g.ldc += r.random_range(0..3);
                            let (ar, ac) = if ta { (k, m) } else { (m, k) };
                            let (br, bc) = if tb { (n, k) } else { (k, n) };
                            let fa = span(0, ar, g.lda, ac);
                            let fb = span(0, br, g.ldb, bc);
                            let fc = span(0, m, g.ldc, n);
                            let gb = GemmBatched {
                                gemm: g,
                                batch,
                                stride_a: if bcast_a { 0 } else { fa + 2 },
                                stride_b: if bcast_b { 0 } else { fb + 1 },
                                stride_c: fc + 3,
                            };
                            let len =
                                |off: usize, s: usize, f: usize| off + (batch - 1) * s + f + 1;
                            let a: Vec<f64> = (0..len(g.a_off, gb.stride_a, fa))
                                .map(|_| r.random_range(-1.0..1.0))
                                .collect();
                            let b: Vec<f64> = (0..len(g.b_off, gb.stride_b, fb))
                                .map(|_| r.random_range(-1.0..1.0))
                                .collect();
                            let c: Vec<f64> = (0..len(g.c_off, gb.stride_c, fc))
                                .map(|_| r.random_range(-1.0..1.0))
                                .collect();
                            let mut got = c.clone();
                            Backend::<f64>::gemm_batched(&Cpu, &gb, &a, &b, &mut got).unwrap();
                            let mut looped = c.clone();
                            for i in 0..batch {
                                Backend::<f64>::gemm(
                                    &Cpu,
                                    &gb.product(i).unwrap(),
                                    &a,
                                    &b,
                                    &mut looped,
                                )
                                .unwrap();
                            }
                            let mut want = c.clone();
                            naive(&gb, &a, &b, &mut want);
                            for i in 0..c.len() {
                                assert!(
                                    (got[i] - want[i]).abs() <= 1e-12 * (1.0 + want[i].abs()),
                                    "{gb:?}: C[{i}] = {} vs {}",
                                    got[i],
                                    want[i]
                                );
                                assert_eq!(
                                    got[i], looped[i],
                                    "{gb:?}: C[{i}] differs from the loop"
                                );
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 5 * 4 * 3 * 2);
    }

    #[test]
    fn heads_side_by_side_in_one_row_stride() {
        // Two heads of d = 2 written into a [T = 2, H·d = 4] output:
        // C_h[t, j] = Σ_l A[t, l]·B_h[l, j], ldc = 4, stride_c = 2.
        let a = vec![1.0, 2.0, 3.0, 4.0]; // A [2×2], broadcast
        let b = vec![1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0]; // B_0 = I, B_1 = 2I
        let mut g = Gemm::dense(2, 2, 2, false, false);
        g.ldc = 4;
        let gb = GemmBatched {
            gemm: g,
            batch: 2,
            stride_a: 0,
            stride_b: 4,
            stride_c: 2,
        };
        let mut c = vec![0.0f64; 8];
        Backend::<f64>::gemm_batched(&Cpu, &gb, &a, &b, &mut c).unwrap();
        assert_eq!(c, vec![1.0, 2.0, 2.0, 4.0, 3.0, 4.0, 6.0, 8.0]);
    }

    #[test]
    fn rejects_bad_batches_naming_the_operand() {
        let g = Gemm::dense(2, 3, 4, false, false); // A 2×4 = 8, B 4×3 = 12, C 2×3 = 6
        let ok = GemmBatched {
            gemm: g,
            batch: 3,
            stride_a: 8,
            stride_b: 12,
            stride_c: 6,
        };
        let (a, b, c) = (vec![0.0f64; 24], vec![0.0f64; 36], vec![0.0f64; 18]);
        let run = |gb: &GemmBatched, a: &[f64], b: &[f64]| {
            let mut c2 = c.clone();
            Backend::<f64>::gemm_batched(&Cpu, gb, &a.to_vec(), &b.to_vec(), &mut c2)
                .map_err(|e| e.to_string())
        };
        run(&ok, &a, &b).unwrap();
        // the last A reaches past the buffer
        let e = run(&ok, &a[..23], &b).unwrap_err();
        assert!(e.contains("gemm A") && e.contains("product 2"), "{e}");
        let e = run(&GemmBatched { stride_b: 13, ..ok }, &a, &b).unwrap_err();
        assert!(e.contains("gemm B") && e.contains("needs 38"), "{e}");
        // C's products overlap (5 < footprint 6, and not side by side)
        let e = run(&GemmBatched { stride_c: 5, ..ok }, &a, &b).unwrap_err();
        assert!(
            e.contains("gemm_batched C") && e.contains("stride_c = 5") && e.contains("footprint 6"),
            "{e}"
        );
        let e = run(&GemmBatched { stride_c: 0, ..ok }, &a, &b).unwrap_err();
        assert!(e.contains("gemm_batched C"), "{e}");
        // a leading dimension below the row length
        let mut bad = g;
        bad.lda = 3;
        let e = run(&GemmBatched { gemm: bad, ..ok }, &a, &b).unwrap_err();
        assert!(e.contains("gemm A") && e.contains("lda = 3"), "{e}");
        // broadcasting A with stride 0 is fine; one product needs no C stride
        run(&GemmBatched { stride_a: 0, ..ok }, &a[..8], &b).unwrap();
        run(
            &GemmBatched {
                batch: 1,
                stride_c: 0,
                ..ok
            },
            &a,
            &b,
        )
        .unwrap();
    }
}
