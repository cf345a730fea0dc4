//! The CPU device: plain loops for element-wise work, rayon across cores where
//! a buffer is large enough to pay for it, and the `gemm` crate for matrix
//! products. Every reduction runs in a fixed order, so results depend only on
//! the inputs and the thread count.

use crate::device::{
    Acc, Act, AdagradArgs, AdamArgs, Backend, BatchNormDims, Device, Gemm, LossKind, LossTarget,
    Resize2d, RmspropArgs, SgdArgs, Window2d,
};
use crate::elem::{Elem, Scalar};
use crate::error::{Error, Result};
use crate::gemm::par::{self, SyncPtr};
use crate::layers::cpu_kernels as sk;
use rayon::prelude::*;

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

/// The microkernel kiln's GEMM uses for `E` on this CPU (`AVX2+FMA 6×16`, …).
pub fn gemm_kernel_name<E: Elem>() -> &'static str {
    crate::gemm::kernel_name::<E>()
}

/// Element counts below this run on one thread: a hand-off to the pool costs a µs or so.
const PAR_MIN: usize = 1 << 15;
/// Chunk size for parallel element-wise loops.
const CHUNK: usize = 1 << 13;

/// Applies `f(dst_chunk, offset)` to the `CHUNK`-element chunks of `dst`, on
/// kiln's pool (`crate::gemm::par`) when `dst` is large.
#[inline]
fn par_chunks<E: Send, F>(dst: &mut [E], f: F)
where
    F: Fn(&mut [E], usize) + Send + Sync,
{
    let par = dst.len() >= PAR_MIN;
    par::pieces(dst, CHUNK, par, |k, c| f(c, k * CHUNK));
}

/// Calls `f(offset, len)` for the `CHUNK`-element chunks of `0..n`, on the
/// pool when `n` is large (for kernels that write several buffers).
#[inline]
fn par_offsets(n: usize, f: impl Fn(usize, usize) + Sync) {
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

/// `f(x)` for one element.
#[inline(always)]
pub(crate) fn act_f<E: Elem>(f: Act, x: E) -> E {
    match f {
        Act::Relu => {
            if x > E::zero() {
                x
            } else {
                E::zero()
            }
        }
        Act::LeakyRelu(a) => {
            if x > E::zero() {
                x
            } else {
                x * E::of(a)
            }
        }
        Act::Sigmoid => sigmoid(x),
        Act::Tanh => x.tanh(),
    }
}

/// `f'` for one element, from the input `x` and the output `y`.
#[inline(always)]
pub(crate) fn act_df<E: Elem>(f: Act, x: E, y: E) -> E {
    match f {
        Act::Relu => {
            if x > E::zero() {
                E::one()
            } else {
                E::zero()
            }
        }
        Act::LeakyRelu(a) => {
            if x > E::zero() {
                E::one()
            } else {
                E::of(a)
            }
        }
        Act::Sigmoid => y * (E::one() - y),
        Act::Tanh => E::one() - y * y,
    }
}

/// Numerically stable logistic function.
#[inline(always)]
pub(crate) fn sigmoid<E: Elem>(x: E) -> E {
    if x >= E::zero() {
        E::one() / (E::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (E::one() + e)
    }
}

impl<E: Elem> Backend<E> for Cpu {
    fn zeros<T: Scalar>(&self, n: usize) -> Result<Vec<T>> {
        Ok(vec![T::default(); n])
    }
    fn len<T: Scalar>(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }
    fn resize<T: Scalar>(&self, buf: &mut Vec<T>, n: usize) -> Result<()> {
        buf.resize(n, T::default());
        Ok(())
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
    fn copy(&self, src: &Vec<E>, dst: &mut Vec<E>, n: usize) -> Result<()> {
        need("copy src", src, n)?;
        need("copy dst", dst, n)?;
        dst[..n].copy_from_slice(&src[..n]);
        Ok(())
    }
    fn fill(&self, dst: &mut Vec<E>, n: usize, v: E) -> Result<()> {
        need("fill", dst, n)?;
        dst[..n].fill(v);
        Ok(())
    }

    fn gemm(&self, g: &Gemm, a: &Vec<E>, b: &Vec<E>, c: &mut Vec<E>) -> Result<()> {
        Cpu::gemm_slices(g, a, b, c)
    }
    fn add_bias(&self, y: &mut Vec<E>, b: &Vec<E>, rows: usize, cols: usize) -> Result<()> {
        need("add_bias y", y, rows * cols)?;
        need("add_bias b", b, cols)?;
        let b = &b[..cols];
        for row in y[..rows * cols].chunks_exact_mut(cols) {
            for (v, bb) in row.iter_mut().zip(b) {
                *v = *v + *bb;
            }
        }
        Ok(())
    }
    fn bias_grad(
        &self,
        dy: &Vec<E>,
        db: &mut Vec<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        need("bias_grad dy", dy, rows * cols)?;
        need("bias_grad db", db, cols)?;
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

    fn act_fwd(&self, f: Act, x: &Vec<E>, y: &mut Vec<E>, n: usize) -> Result<()> {
        need("act_fwd x", x, n)?;
        need("act_fwd y", y, n)?;
        let x = &x[..n];
        // Zipped slices and the function matched outside the loop, so the
        // loops vectorise.
        par_chunks(&mut y[..n], |c, o| {
            let xs = &x[o..o + c.len()];
            match f {
                Act::Relu => c
                    .iter_mut()
                    .zip(xs)
                    .for_each(|(v, x)| *v = act_f(Act::Relu, *x)),
                _ => c.iter_mut().zip(xs).for_each(|(v, x)| *v = act_f(f, *x)),
            }
        });
        Ok(())
    }
    fn act_bwd(
        &self,
        f: Act,
        x: &Vec<E>,
        y: &Vec<E>,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need("act_bwd x", x, n)?;
        need("act_bwd y", y, n)?;
        need("act_bwd dy", dy, n)?;
        need("act_bwd dx", dx, n)?;
        par_chunks(&mut dx[..n], |c, o| {
            let l = c.len();
            let (xs, ys, gs) = (&x[o..o + l], &y[o..o + l], &dy[o..o + l]);
            match (f, acc) {
                (Act::Relu, Acc::Set) => c
                    .iter_mut()
                    .zip(xs.iter().zip(gs))
                    .for_each(|(v, (x, g))| *v = *g * act_df(Act::Relu, *x, *x)),
                (Act::Relu, Acc::Add) => c
                    .iter_mut()
                    .zip(xs.iter().zip(gs))
                    .for_each(|(v, (x, g))| *v = *v + *g * act_df(Act::Relu, *x, *x)),
                _ => {
                    for i in 0..l {
                        acc.put(&mut c[i], gs[i] * act_df(f, xs[i], ys[i]));
                    }
                }
            }
        });
        Ok(())
    }
    fn add(&self, a: &Vec<E>, b: &Vec<E>, y: &mut Vec<E>, n: usize) -> Result<()> {
        need("add a", a, n)?;
        need("add b", b, n)?;
        need("add y", y, n)?;
        par_chunks(&mut y[..n], |c, o| {
            let (a, b) = (&a[o..o + c.len()], &b[o..o + c.len()]);
            c.iter_mut()
                .zip(a.iter().zip(b))
                .for_each(|(v, (a, b))| *v = *a + *b);
        });
        Ok(())
    }
    fn axpy(&self, alpha: E, src: &Vec<E>, dst: &mut Vec<E>, n: usize, acc: Acc) -> Result<()> {
        need("axpy src", src, n)?;
        need("axpy dst", dst, n)?;
        par_chunks(&mut dst[..n], |c, o| {
            let s = &src[o..o + c.len()];
            match acc {
                Acc::Set => c.iter_mut().zip(s).for_each(|(v, s)| *v = alpha * *s),
                Acc::Add => c.iter_mut().zip(s).for_each(|(v, s)| *v = *v + alpha * *s),
            }
        });
        Ok(())
    }
    fn copy_block(
        &self,
        src: &Vec<E>,
        src_ld: usize,
        src_off: usize,
        dst: &mut Vec<E>,
        dst_ld: usize,
        dst_off: usize,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        need("copy_block src", src, (rows - 1) * src_ld + src_off + cols)?;
        need("copy_block dst", dst, (rows - 1) * dst_ld + dst_off + cols)?;
        for r in 0..rows {
            let s = &src[r * src_ld + src_off..][..cols];
            let d = &mut dst[r * dst_ld + dst_off..][..cols];
            match acc {
                Acc::Set => d.copy_from_slice(s),
                Acc::Add => d.iter_mut().zip(s).for_each(|(d, s)| *d = *d + *s),
            }
        }
        Ok(())
    }

    fn softmax_fwd(&self, x: &Vec<E>, y: &mut Vec<E>, rows: usize, cols: usize) -> Result<()> {
        need("softmax x", x, rows * cols)?;
        need("softmax y", y, rows * cols)?;
        for (xr, yr) in x[..rows * cols]
            .chunks_exact(cols)
            .zip(y[..rows * cols].chunks_exact_mut(cols))
        {
            softmax_row(xr, yr);
        }
        Ok(())
    }
    fn softmax_bwd(
        &self,
        y: &Vec<E>,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let n = rows * cols;
        need("softmax_bwd y", y, n)?;
        need("softmax_bwd dy", dy, n)?;
        need("softmax_bwd dx", dx, n)?;
        for r in 0..rows {
            let yr = &y[r * cols..][..cols];
            let dyr = &dy[r * cols..][..cols];
            let dot: E = yr.iter().zip(dyr).map(|(a, b)| *a * *b).sum();
            for j in 0..cols {
                acc.put(&mut dx[r * cols + j], yr[j] * (dyr[j] - dot));
            }
        }
        Ok(())
    }
    fn loss(
        &self,
        kind: LossKind,
        x: &Vec<E>,
        target: LossTarget<'_, E, Self>,
        dx: Option<&mut Vec<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        need("loss x", x, rows * cols)?;
        if let Some(d) = &dx {
            need("loss dx", d, rows * cols)?;
        }
        crate::loss::cpu_loss(kind, &x[..rows * cols], target, dx, rows, cols)
    }

    fn sgd_step(
        &self,
        a: &SgdArgs,
        p: &mut Vec<E>,
        g: &Vec<E>,
        buf: &mut Vec<E>,
        n: usize,
    ) -> Result<()> {
        need("sgd p", p, n)?;
        need("sgd g", g, n)?;
        let (lr, mom, damp, wd) = (
            E::of(a.lr),
            E::of(a.momentum),
            E::of(a.dampening),
            E::of(a.weight_decay),
        );
        if a.momentum == 0.0 {
            par_chunks(&mut p[..n], |c, o| {
                let gs = &g[o..o + c.len()];
                c.iter_mut().zip(gs).for_each(|(v, g)| {
                    let d = *g + wd * *v;
                    *v = *v - lr * d;
                });
            });
            return Ok(());
        }
        need("sgd momentum buffer", buf, n)?;
        let (first, nesterov) = (a.first, a.nesterov);
        let (pp, bp) = (SyncPtr(p.as_mut_ptr()), SyncPtr(buf.as_mut_ptr()));
        par_offsets(n, |o, len| {
            // SAFETY: chunks are disjoint and inside `p` and `buf` (checked above).
            let (pc, bc) = unsafe { (pp.slice(o, len), bp.slice(o, len)) };
            let gs = &g[o..o + len];
            for i in 0..len {
                let d = gs[i] + wd * pc[i];
                let b = if first {
                    d
                } else {
                    mom * bc[i] + (E::one() - damp) * d
                };
                bc[i] = b;
                let step = if nesterov { d + mom * b } else { b };
                pc[i] = pc[i] - lr * step;
            }
        });
        Ok(())
    }
    fn adam_step(
        &self,
        a: &AdamArgs,
        p: &mut Vec<E>,
        g: &Vec<E>,
        m: &mut Vec<E>,
        v: &mut Vec<E>,
        n: usize,
    ) -> Result<()> {
        need("adam p", p, n)?;
        need("adam g", g, n)?;
        need("adam m", m, n)?;
        need("adam v", v, n)?;
        let t = a.step as i32;
        let bc1 = 1.0 - a.beta1.powi(t);
        let bc2 = 1.0 - a.beta2.powi(t);
        let (b1, b2) = (E::of(a.beta1), E::of(a.beta2));
        let step_size = E::of(a.lr / bc1);
        let bc2_sqrt = E::of(bc2.sqrt());
        let eps = E::of(a.eps);
        let wd = E::of(a.weight_decay);
        let decay = E::of(1.0 - a.lr * a.weight_decay);
        let decoupled = a.decoupled;
        let (pp, mp, vp) = (
            SyncPtr(p.as_mut_ptr()),
            SyncPtr(m.as_mut_ptr()),
            SyncPtr(v.as_mut_ptr()),
        );
        par_offsets(n, |o, len| {
            // SAFETY: chunks are disjoint and inside `p`, `m`, `v` (checked above).
            let (pc, mc, vc) = unsafe { (pp.slice(o, len), mp.slice(o, len), vp.slice(o, len)) };
            let gs = &g[o..o + len];
            for i in 0..len {
                let mut gi = gs[i];
                if decoupled {
                    pc[i] = pc[i] * decay;
                } else {
                    gi = gi + wd * pc[i];
                }
                // torch: exp_avg.lerp_(grad, 1 − β₁)
                mc[i] = mc[i] + (E::one() - b1) * (gi - mc[i]);
                vc[i] = b2 * vc[i] + (E::one() - b2) * gi * gi;
                let denom = vc[i].sqrt() / bc2_sqrt + eps;
                pc[i] = pc[i] - step_size * mc[i] / denom;
            }
        });
        Ok(())
    }

    // Training-toolkit kernels: optimizer bodies in `crate::optim`, loss bodies
    // in `crate::loss::distribution`.
    fn adagrad_step(
        &self,
        a: &AdagradArgs,
        p: &mut Vec<E>,
        g: &Vec<E>,
        sum: &mut Vec<E>,
        n: usize,
    ) -> Result<()> {
        need("adagrad p", p, n)?;
        need("adagrad g", g, n)?;
        need("adagrad sum", sum, n)?;
        crate::optim::cpu_adagrad(a, &mut p[..n], &g[..n], &mut sum[..n]);
        Ok(())
    }
    fn rmsprop_step(
        &self,
        a: &RmspropArgs,
        p: &mut Vec<E>,
        g: &Vec<E>,
        square_avg: &mut Vec<E>,
        grad_avg: &mut Vec<E>,
        buf: &mut Vec<E>,
        n: usize,
    ) -> Result<()> {
        need("rmsprop p", p, n)?;
        need("rmsprop g", g, n)?;
        need("rmsprop square_avg", square_avg, n)?;
        let ga = if a.centered {
            need("rmsprop grad_avg", grad_avg, n)?;
            Some(&mut grad_avg[..n])
        } else {
            None
        };
        let b = if a.momentum > 0.0 {
            need("rmsprop momentum buffer", buf, n)?;
            Some(&mut buf[..n])
        } else {
            None
        };
        crate::optim::cpu_rmsprop(a, &mut p[..n], &g[..n], &mut square_avg[..n], ga, b);
        Ok(())
    }
    fn sum_sq(&self, x: &Vec<E>, n: usize) -> Result<f64> {
        need("sum_sq x", x, n)?;
        Ok(chunked_sum(&x[..n], |v| v.f64() * v.f64()))
    }
    fn sum_abs(&self, x: &Vec<E>, n: usize) -> Result<f64> {
        need("sum_abs x", x, n)?;
        Ok(chunked_sum(&x[..n], |v| v.f64().abs()))
    }
    fn penalty_grad(
        &self,
        l1: f64,
        l2: f64,
        theta: &Vec<E>,
        dst: &mut Vec<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need("penalty_grad theta", theta, n)?;
        need("penalty_grad dst", dst, n)?;
        let (l1, two_l2) = (E::of(l1), E::of(2.0 * l2));
        par_chunks(&mut dst[..n], |c, o| {
            for (i, d) in c.iter_mut().enumerate() {
                let t = theta[o + i];
                let s = if t > E::zero() {
                    E::one()
                } else if t < E::zero() {
                    -E::one()
                } else {
                    E::zero()
                };
                acc.put(d, l1 * s + two_l2 * t);
            }
        });
        Ok(())
    }
    fn soft_cross_entropy(
        &self,
        x: &Vec<E>,
        target: LossTarget<'_, E, Self>,
        smoothing: f64,
        dx: Option<&mut Vec<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let n = rows * cols;
        need("soft_cross_entropy x", x, n)?;
        match target {
            LossTarget::Dense(t) => need("soft_cross_entropy target", t, n)?,
            LossTarget::Classes(y) => need("soft_cross_entropy labels", y, rows)?,
        }
        if let Some(d) = &dx {
            need("soft_cross_entropy dx", d, n)?;
        }
        crate::loss::distribution::cpu_soft_cross_entropy(
            &x[..n],
            target,
            smoothing,
            dx,
            rows,
            cols,
        )
    }
    fn focal_loss(
        &self,
        x: &Vec<E>,
        labels: &Vec<u32>,
        alpha: Option<&Vec<E>>,
        gamma: f64,
        dx: Option<&mut Vec<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let n = rows * cols;
        need("focal_loss x", x, n)?;
        need("focal_loss labels", labels, rows)?;
        if let Some(a) = alpha {
            need("focal_loss alpha", a, cols)?;
        }
        if let Some(d) = &dx {
            need("focal_loss dx", d, n)?;
        }
        crate::loss::distribution::cpu_focal(
            &x[..n],
            labels,
            alpha.map(|a| &a[..]),
            gamma,
            dx,
            rows,
            cols,
        )
    }
    fn kl_div(
        &self,
        x: &Vec<E>,
        target: &Vec<E>,
        log_target: bool,
        dx: Option<&mut Vec<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let n = rows * cols;
        need("kl_div x", x, n)?;
        need("kl_div target", target, n)?;
        if let Some(d) = &dx {
            need("kl_div dx", d, n)?;
        }
        crate::loss::distribution::cpu_kl_div(&x[..n], &target[..n], log_target, dx, rows, cols)
    }

    // Spatial kernels: bodies in `crate::layers::cpu_kernels`.
    fn im2col(
        &self,
        g: &Window2d,
        x: &Vec<E>,
        first: usize,
        count: usize,
        cols: &mut Vec<E>,
    ) -> Result<()> {
        sk::im2col(g, x, first, count, cols)
    }
    fn col2im(
        &self,
        g: &Window2d,
        cols: &Vec<E>,
        x: &mut Vec<E>,
        first: usize,
        count: usize,
        acc: Acc,
    ) -> Result<()> {
        sk::col2im(g, cols, x, first, count, acc)
    }
    fn transpose01(
        &self,
        src: &Vec<E>,
        so: usize,
        dst: &mut Vec<E>,
        d_o: usize,
        a: usize,
        b: usize,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        sk::transpose01(src, so, dst, d_o, a, b, n, acc)
    }
    fn add_channel_bias(
        &self,
        y: &mut Vec<E>,
        bias: &Vec<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
    ) -> Result<()> {
        sk::add_channel_bias(y, bias, batch, channels, spatial)
    }
    fn channel_bias_grad(
        &self,
        dy: &Vec<E>,
        db: &mut Vec<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
        acc: Acc,
    ) -> Result<()> {
        sk::channel_bias_grad(dy, db, batch, channels, spatial, acc)
    }
    fn max_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Vec<E>,
        y: &mut Vec<E>,
        indices: &mut Vec<u32>,
        batch: usize,
    ) -> Result<()> {
        sk::max_pool2d_fwd(g, x, y, indices, batch)
    }
    fn max_unpool2d(
        &self,
        g: &Window2d,
        idx: &Vec<u32>,
        src: &Vec<E>,
        dst: &mut Vec<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        sk::max_unpool2d(g, idx, src, dst, batch, acc)
    }
    fn max_unpool2d_bwd(
        &self,
        g: &Window2d,
        idx: &Vec<u32>,
        src: &Vec<E>,
        dst: &mut Vec<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        sk::max_unpool2d_bwd(g, idx, src, dst, batch, acc)
    }
    fn avg_pool2d_fwd(&self, g: &Window2d, x: &Vec<E>, y: &mut Vec<E>, batch: usize) -> Result<()> {
        sk::avg_pool2d_fwd(g, x, y, batch)
    }
    fn avg_pool2d_bwd(
        &self,
        g: &Window2d,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        sk::avg_pool2d_bwd(g, dy, dx, batch, acc)
    }
    fn upsample2d_fwd(&self, g: &Resize2d, x: &Vec<E>, y: &mut Vec<E>, batch: usize) -> Result<()> {
        sk::upsample2d_fwd(g, x, y, batch)
    }
    fn upsample2d_bwd(
        &self,
        g: &Resize2d,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        sk::upsample2d_bwd(g, dy, dx, batch, acc)
    }
    fn batch_norm_stats(
        &self,
        d: &BatchNormDims,
        x: &Vec<E>,
        mean: &mut Vec<E>,
        var: &mut Vec<E>,
    ) -> Result<()> {
        sk::batch_norm_stats(d, x, mean, var)
    }
    fn batch_norm_running(
        &self,
        d: &BatchNormDims,
        m: f64,
        mean: &Vec<E>,
        var: &Vec<E>,
        rm: &mut Vec<E>,
        rv: &mut Vec<E>,
        t: &mut Vec<E>,
    ) -> Result<()> {
        sk::batch_norm_running(d, m, mean, var, rm, rv, t)
    }
    fn batch_norm_fwd(
        &self,
        d: &BatchNormDims,
        x: &Vec<E>,
        mean: &Vec<E>,
        var: &Vec<E>,
        gamma: &Vec<E>,
        beta: &Vec<E>,
        y: &mut Vec<E>,
    ) -> Result<()> {
        sk::batch_norm_fwd(d, x, mean, var, gamma, beta, y)
    }
    fn batch_norm_bwd(
        &self,
        d: &BatchNormDims,
        x: &Vec<E>,
        mean: &Vec<E>,
        var: &Vec<E>,
        gamma: &Vec<E>,
        dy: &Vec<E>,
        dx: Option<(&mut Vec<E>, Acc)>,
        dgamma: &mut Vec<E>,
        dbeta: &mut Vec<E>,
        gacc: Acc,
        scratch: &mut Vec<E>,
    ) -> Result<()> {
        sk::batch_norm_bwd(d, x, mean, var, gamma, dy, dx, dgamma, dbeta, gacc, scratch)
    }
    fn dropout_fwd(&self, x: &Vec<E>, y: &mut Vec<E>, n: usize, p: f64, seed: u64) -> Result<()> {
        sk::dropout_fwd(x, y, n, p, seed)
    }
    fn dropout_bwd(
        &self,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        n: usize,
        p: f64,
        seed: u64,
        acc: Acc,
    ) -> Result<()> {
        sk::dropout_bwd(dy, dx, n, p, seed, acc)
    }
}

/// `Σ f(x_i)` in `f64`: per-chunk sums (in parallel when large), then the
/// chunk sums in order, so the result depends only on the length.
fn chunked_sum<E: Elem>(x: &[E], f: impl Fn(E) -> f64 + Sync) -> f64 {
    let part = |c: &[E]| c.iter().map(|v| f(*v)).sum::<f64>();
    if x.len() < PAR_MIN {
        x.chunks(CHUNK).map(part).sum()
    } else {
        let parts: Vec<f64> = x.par_chunks(CHUNK).map(part).collect();
        parts.iter().sum()
    }
}

/// Stable softmax of one row: subtract the maximum before exponentiating.
pub(crate) fn softmax_row<E: Elem>(x: &[E], y: &mut [E]) {
    let m = x.iter().copied().fold(E::neg_infinity(), E::max);
    let mut s = E::zero();
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = (*xi - m).exp();
        s = s + *yi;
    }
    let inv = E::one() / s;
    for yi in y.iter_mut() {
        *yi = *yi * inv;
    }
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
        let dev = Cpu::default();
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
