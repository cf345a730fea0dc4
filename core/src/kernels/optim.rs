//! Optimizer updates (`torch.optim`'s SGD, Adam/AdamW, Adagrad, RMSprop)
//! and the elastic-net penalty's gradient, one fused kernel each. On the
//! CPU, SGD's and Adam's loops run at the CPU's widest vectors
//! (`crate::simd::wide`), bitwise the baseline width's values.
//!
//! The trait states the kernels (with their formulas) and checks their
//! arguments once for every device; the CPU bodies follow it in this file;
//! the CUDA sources are `cuda/src/kernels/*.cu` and the CUDA impl is in
//! `cuda/src/kernels/<family>.rs`.

use crate::cpu::{par_chunks, par_offsets};
use crate::device::{need, Acc, AdagradArgs, AdamArgs, Backend, RmspropArgs, SgdArgs};
use crate::elem::Elem;
use crate::error::Result;
use crate::gemm::par::SyncPtr;
use crate::Cpu;

/// The optimizer-update and penalty kernels of a device, for element type `E`.
///
/// Used by the optimizers of `crate::optim` and the penalties of `crate::regularize`; a layer that needs them states `D: OptimKernels<E>`,
/// so a device without them cannot compile a network that uses it. Layers
/// call the provided methods, which check arguments and lengths once for
/// every device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no optimizer-update and penalty kernels for `{E}`",
    label = "needed by the optimizers of crate::optim and the penalties of crate::regularize"
)]
pub trait OptimKernels<E: Elem>: Backend<E> {
    /// One `torch.optim.SGD` step on `n` elements; `buf` is the momentum buffer
    /// (unused, and may be empty, when momentum is 0).
    fn sgd_step(
        &self,
        a: &SgdArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        buf: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()> {
        need(self, "sgd p", p, n)?;
        need(self, "sgd g", g, n)?;
        if a.momentum != 0.0 {
            need(self, "sgd momentum buffer", buf, n)?;
        }
        self.raw_sgd_step(a, p, g, buf, n)
    }
    /// One `torch.optim.Adam`/`AdamW` step on `n` elements.
    fn adam_step(
        &self,
        a: &AdamArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        m: &mut Self::Buf<E>,
        v: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()> {
        need(self, "adam p", p, n)?;
        need(self, "adam g", g, n)?;
        need(self, "adam m", m, n)?;
        need(self, "adam v", v, n)?;
        self.raw_adam_step(a, p, g, m, v, n)
    }
    /// One `torch.optim.Adagrad` step on `n` elements; `sum` is the accumulator
    /// of squared gradients (see `crate::optim::Adagrad` for the formula).
    fn adagrad_step(
        &self,
        a: &AdagradArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        sum: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()> {
        need(self, "adagrad p", p, n)?;
        need(self, "adagrad g", g, n)?;
        need(self, "adagrad sum", sum, n)?;
        self.raw_adagrad_step(a, p, g, sum, n)
    }
    /// One `torch.optim.RMSprop` step on `n` elements: `square_avg` always,
    /// `grad_avg` when `a.centered`, `buf` (momentum) when `a.momentum > 0`;
    /// unused buffers may be empty (see `crate::optim::RmsProp`).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn rmsprop_step(
        &self,
        a: &RmspropArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        square_avg: &mut Self::Buf<E>,
        grad_avg: &mut Self::Buf<E>,
        buf: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()> {
        need(self, "rmsprop p", p, n)?;
        need(self, "rmsprop g", g, n)?;
        need(self, "rmsprop square_avg", square_avg, n)?;
        if a.centered {
            need(self, "rmsprop grad_avg", grad_avg, n)?;
        }
        if a.momentum > 0.0 {
            need(self, "rmsprop momentum buffer", buf, n)?;
        }
        self.raw_rmsprop_step(a, p, g, square_avg, grad_avg, buf, n)
    }
    /// The gradient of the elastic-net penalty `l1·Σ|θ| + l2·Σθ²`:
    /// `dst (acc)= l1·sign(θ) + 2·l2·θ` over `n` elements (`sign(0) = 0`, as
    /// PyTorch differentiates `|θ|`).
    fn penalty_grad(
        &self,
        l1: f64,
        l2: f64,
        theta: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "penalty_grad theta", theta, n)?;
        need(self, "penalty_grad dst", dst, n)?;
        self.raw_penalty_grad(l1, l2, theta, dst, n, acc)
    }
    /// Body of [`OptimKernels::sgd_step`] (arguments already checked).
    fn raw_sgd_step(
        &self,
        a: &SgdArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        buf: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;
    /// Body of [`OptimKernels::adam_step`] (arguments already checked).
    fn raw_adam_step(
        &self,
        a: &AdamArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        m: &mut Self::Buf<E>,
        v: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;
    /// Body of [`OptimKernels::adagrad_step`] (arguments already checked).
    fn raw_adagrad_step(
        &self,
        a: &AdagradArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        sum: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;
    /// Body of [`OptimKernels::rmsprop_step`] (arguments already checked).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_rmsprop_step(
        &self,
        a: &RmspropArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        square_avg: &mut Self::Buf<E>,
        grad_avg: &mut Self::Buf<E>,
        buf: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;
    /// Body of [`OptimKernels::penalty_grad`] (arguments already checked).
    fn raw_penalty_grad(
        &self,
        l1: f64,
        l2: f64,
        theta: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> OptimKernels<E> for Cpu {
    fn raw_sgd_step(
        &self,
        a: &SgdArgs,
        p: &mut Vec<E>,
        g: &Vec<E>,
        buf: &mut Vec<E>,
        n: usize,
    ) -> Result<()> {
        let (lr, mom, damp, wd) = (
            E::of(a.lr),
            E::of(a.momentum),
            E::of(a.dampening),
            E::of(a.weight_decay),
        );
        if a.momentum == 0.0 {
            par_chunks(&mut p[..n], |c, o| {
                let gs = &g[o..o + c.len()];
                crate::simd::wide(|| {
                    c.iter_mut().zip(gs).for_each(|(v, g)| {
                        let d = *g + wd * *v;
                        *v = *v - lr * d;
                    })
                });
            });
            return Ok(());
        }
        let (first, nesterov) = (a.first, a.nesterov);
        let (pp, bp) = (SyncPtr(p.as_mut_ptr()), SyncPtr(buf.as_mut_ptr()));
        par_offsets(n, |o, len| {
            // SAFETY: chunks are disjoint and inside `p` and `buf` (checked above).
            let (pc, bc) = unsafe { (pp.slice(o, len), bp.slice(o, len)) };
            let gs = &g[o..o + len];
            crate::simd::wide(
                #[inline(always)]
                || {
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
                },
            );
        });
        Ok(())
    }

    fn raw_adam_step(
        &self,
        a: &AdamArgs,
        p: &mut Vec<E>,
        g: &Vec<E>,
        m: &mut Vec<E>,
        v: &mut Vec<E>,
        n: usize,
    ) -> Result<()> {
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
            crate::simd::wide(
                #[inline(always)]
                || {
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
                },
            );
        });
        Ok(())
    }
    fn raw_adagrad_step(
        &self,
        a: &AdagradArgs,
        p: &mut Vec<E>,
        g: &Vec<E>,
        sum: &mut Vec<E>,
        n: usize,
    ) -> Result<()> {
        crate::optim::cpu_adagrad(a, &mut p[..n], &g[..n], &mut sum[..n]);
        Ok(())
    }

    fn raw_rmsprop_step(
        &self,
        a: &RmspropArgs,
        p: &mut Vec<E>,
        g: &Vec<E>,
        square_avg: &mut Vec<E>,
        grad_avg: &mut Vec<E>,
        buf: &mut Vec<E>,
        n: usize,
    ) -> Result<()> {
        let ga = if a.centered {
            Some(&mut grad_avg[..n])
        } else {
            None
        };
        let b = if a.momentum > 0.0 {
            Some(&mut buf[..n])
        } else {
            None
        };
        crate::optim::cpu_rmsprop(a, &mut p[..n], &g[..n], &mut square_avg[..n], ga, b);
        Ok(())
    }
    fn raw_penalty_grad(
        &self,
        l1: f64,
        l2: f64,
        theta: &Vec<E>,
        dst: &mut Vec<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::testing::{at_baseline_width, bits};
    use rand::Rng;

    /// SGD (plain, momentum, Nesterov, first step) and Adam (L2 and
    /// decoupled decay) through [`crate::simd::wide`] give the baseline
    /// width's values bit for bit (IEEE operations, `sqrt` included, in the
    /// same order at any width), in f32 and f64, over three steps on a length
    /// with a vector remainder. Under `PAR_MIN`, so on this thread and its
    /// kernel cap.
    fn wide_is_bitwise<E: Elem>() {
        let n = 16 * 29 + 7;
        let mut r = crate::rng(3);
        let mut draw = || -> Vec<E> { (0..n).map(|_| E::of(r.random_range(-1.0..1.0))).collect() };
        let (p0, g) = (draw(), draw());
        let sgd = |momentum: f64, nesterov: bool| {
            let (mut p, mut buf) = (p0.clone(), vec![E::zero(); n]);
            for step in 0..3 {
                let a = SgdArgs {
                    lr: 0.1,
                    momentum,
                    dampening: 0.1,
                    weight_decay: 1e-2,
                    nesterov,
                    first: step == 0,
                };
                Cpu.sgd_step(&a, &mut p, &g, &mut buf, n).unwrap();
            }
            [bits(&p), bits(&buf)]
        };
        let adam = |decoupled: bool| {
            let (mut p, mut m, mut v) = (p0.clone(), vec![E::zero(); n], vec![E::zero(); n]);
            for step in 1..=3 {
                let a = AdamArgs {
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 1e-2,
                    decoupled,
                    step,
                };
                Cpu.adam_step(&a, &mut p, &g, &mut m, &mut v, n).unwrap();
            }
            [bits(&p), bits(&m), bits(&v)]
        };
        let base = |f: &dyn Fn() -> Vec<Vec<u64>>| at_baseline_width(f);
        for (mom, nest) in [(0.0, false), (0.9, false), (0.9, true)] {
            let f = || sgd(mom, nest).to_vec();
            assert_eq!(f(), base(&f), "SGD momentum {mom}, nesterov {nest}");
        }
        for dec in [false, true] {
            let f = || adam(dec).to_vec();
            assert_eq!(f(), base(&f), "Adam decoupled {dec}");
        }
    }

    #[test]
    fn wide_is_bitwise_f32() {
        wide_is_bitwise::<f32>();
    }

    #[test]
    fn wide_is_bitwise_f64() {
        wide_is_bitwise::<f64>();
    }
}
