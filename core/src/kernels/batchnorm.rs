//! Batch-normalisation kernels: batch statistics, the running-statistics
//! update, the normalisation and its training-mode backward.
//!
//! The trait states the kernels (with their formulas) and checks their
//! arguments once for every device; the CPU bodies follow it in this file;
//! the CUDA sources are `cuda/src/kernels/*.cu` and the CUDA impl is in
//! `cuda/src/kernels/<family>.rs`.

use crate::device::{need, Acc, Backend, BatchNormDims};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::cpu_util::{pieces, pieces2, PAR_MIN};
use crate::Cpu;

/// The batch-normalisation kernels of a device, for element type `E`.
///
/// Used by BatchNorm1d, BatchNorm2d; a layer that needs them states `D: BatchNormKernels<E>`,
/// so a device without them cannot compile a network that uses it. Layers
/// call the provided methods, which check arguments and lengths once for
/// every device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no batch-normalisation kernels for `{E}`",
    label = "needed by BatchNorm1d, BatchNorm2d"
)]
pub trait BatchNormKernels<E: Elem>: Backend<E> {
    /// Per-channel batch statistics: `mean[c]` and the biased `var[c]` over the
    /// `batch · spatial` values of channel `c` (two passes, for accuracy).
    fn batch_norm_stats(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf<E>,
        mean: &mut Self::Buf<E>,
        var: &mut Self::Buf<E>,
    ) -> Result<()> {
        need(
            self,
            "batch_norm_stats x",
            x,
            d.batch * d.channels * d.spatial,
        )?;
        need(self, "batch_norm_stats mean", mean, d.channels)?;
        need(self, "batch_norm_stats var", var, d.channels)?;
        self.raw_batch_norm_stats(d, x, mean, var)
    }
    /// PyTorch's running-statistics update with momentum `m` after a batch of
    /// `count = batch · spatial` values per channel:
    /// `rm = (1 − m)·rm + m·mean`, `rv = (1 − m)·rv + m·var·count/(count − 1)`
    /// (unbiased), and `tracked[0] += 1` (`num_batches_tracked`).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn batch_norm_running(
        &self,
        d: &BatchNormDims,
        momentum: f64,
        mean: &Self::Buf<E>,
        var: &Self::Buf<E>,
        running_mean: &mut Self::Buf<E>,
        running_var: &mut Self::Buf<E>,
        tracked: &mut Self::Buf<E>,
    ) -> Result<()> {
        let c = d.channels;
        need(self, "batch_norm_running mean", mean, c)?;
        need(self, "batch_norm_running var", var, c)?;
        need(self, "batch_norm_running running_mean", running_mean, c)?;
        need(self, "batch_norm_running running_var", running_var, c)?;
        need(self, "batch_norm_running num_batches_tracked", tracked, 1)?;
        self.raw_batch_norm_running(d, momentum, mean, var, running_mean, running_var, tracked)
    }
    /// `y = (x − mean[c]) / √(var[c] + ε) · gamma[c] + beta[c]`.
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn batch_norm_fwd(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf<E>,
        mean: &Self::Buf<E>,
        var: &Self::Buf<E>,
        gamma: &Self::Buf<E>,
        beta: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
    ) -> Result<()> {
        let n = d.batch * d.channels * d.spatial;
        need(self, "batch_norm_fwd x", x, n)?;
        need(self, "batch_norm_fwd y", y, n)?;
        need(self, "batch_norm_fwd mean", mean, d.channels)?;
        need(self, "batch_norm_fwd var", var, d.channels)?;
        need(self, "batch_norm_fwd gamma", gamma, d.channels)?;
        need(self, "batch_norm_fwd beta", beta, d.channels)?;
        self.raw_batch_norm_fwd(d, x, mean, var, gamma, beta, y)
    }
    /// Backward of batch normalisation in training mode (batch statistics),
    /// with `x̂ = (x − mean)/σ`, `σ = √(var + ε)` and `M = batch · spatial`:
    /// `dbeta (gacc)= Σ dy`, `dgamma (gacc)= Σ dy·x̂`, and, when `dx` is given,
    /// `dx (acc)= (γ/σ)·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)`. `scratch` holds at least
    /// `2·channels` values (the two sums).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn batch_norm_bwd(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf<E>,
        mean: &Self::Buf<E>,
        var: &Self::Buf<E>,
        gamma: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: Option<(&mut Self::Buf<E>, Acc)>,
        dgamma: &mut Self::Buf<E>,
        dbeta: &mut Self::Buf<E>,
        gacc: Acc,
        scratch: &mut Self::Buf<E>,
    ) -> Result<()> {
        let (n, ch) = (d.batch * d.channels * d.spatial, d.channels);
        need(self, "batch_norm_bwd x", x, n)?;
        need(self, "batch_norm_bwd dy", dy, n)?;
        need(self, "batch_norm_bwd scratch", scratch, 2 * ch)?;
        need(self, "batch_norm_bwd mean", mean, ch)?;
        need(self, "batch_norm_bwd var", var, ch)?;
        need(self, "batch_norm_bwd gamma", gamma, ch)?;
        need(self, "batch_norm_bwd dgamma", dgamma, ch)?;
        need(self, "batch_norm_bwd dbeta", dbeta, ch)?;
        if let Some((dx, _)) = &dx {
            need(self, "batch_norm_bwd dx", &**dx, n)?;
        }
        self.raw_batch_norm_bwd(d, x, mean, var, gamma, dy, dx, dgamma, dbeta, gacc, scratch)
    }
    /// Body of [`BatchNormKernels::batch_norm_stats`] (arguments already checked).
    fn raw_batch_norm_stats(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf<E>,
        mean: &mut Self::Buf<E>,
        var: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`BatchNormKernels::batch_norm_running`] (arguments already checked).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_batch_norm_running(
        &self,
        d: &BatchNormDims,
        momentum: f64,
        mean: &Self::Buf<E>,
        var: &Self::Buf<E>,
        running_mean: &mut Self::Buf<E>,
        running_var: &mut Self::Buf<E>,
        tracked: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`BatchNormKernels::batch_norm_fwd`] (arguments already checked).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_batch_norm_fwd(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf<E>,
        mean: &Self::Buf<E>,
        var: &Self::Buf<E>,
        gamma: &Self::Buf<E>,
        beta: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`BatchNormKernels::batch_norm_bwd`] (arguments already checked).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_batch_norm_bwd(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf<E>,
        mean: &Self::Buf<E>,
        var: &Self::Buf<E>,
        gamma: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: Option<(&mut Self::Buf<E>, Acc)>,
        dgamma: &mut Self::Buf<E>,
        dbeta: &mut Self::Buf<E>,
        gacc: Acc,
        scratch: &mut Self::Buf<E>,
    ) -> Result<()>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> BatchNormKernels<E> for Cpu {
    fn raw_batch_norm_stats(
        &self,
        d: &BatchNormDims,
        x: &Vec<E>,
        mean: &mut Vec<E>,
        var: &mut Vec<E>,
    ) -> Result<()> {
        batch_norm_stats(d, x, mean, var)
    }

    fn raw_batch_norm_running(
        &self,
        d: &BatchNormDims,
        m: f64,
        mean: &Vec<E>,
        var: &Vec<E>,
        rm: &mut Vec<E>,
        rv: &mut Vec<E>,
        t: &mut Vec<E>,
    ) -> Result<()> {
        batch_norm_running(d, m, mean, var, rm, rv, t)
    }

    fn raw_batch_norm_fwd(
        &self,
        d: &BatchNormDims,
        x: &Vec<E>,
        mean: &Vec<E>,
        var: &Vec<E>,
        gamma: &Vec<E>,
        beta: &Vec<E>,
        y: &mut Vec<E>,
    ) -> Result<()> {
        batch_norm_fwd(d, x, mean, var, gamma, beta, y)
    }

    fn raw_batch_norm_bwd(
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
        batch_norm_bwd(d, x, mean, var, gamma, dy, dx, dgamma, dbeta, gacc, scratch)
    }
}

/// `Σ f(a_i, b_i)` over the values `i` of channel `c` (rows `(s, c)` of the
/// `[batch, channels, spatial]` buffers `a` and `b`), in f64 with eight
/// interleaved partial sums (so the loop vectorises), in a fixed order.
/// Always inlined, so that inside [`crate::simd::wide`] it is compiled at
/// the CPU's widest vectors (the eight f64 sums are one AVX-512 register).
#[inline(always)]
fn channel_sum<E: Elem>(
    d: &BatchNormDims,
    c: usize,
    a: &[E],
    b: &[E],
    f: impl Fn(E, E) -> f64,
) -> f64 {
    let (mut lanes, mut tail) = ([0.0f64; 8], 0.0);
    for s in 0..d.batch {
        let o = (s * d.channels + c) * d.spatial;
        let (mut ca, mut cb) = (
            a[o..o + d.spatial].chunks_exact(8),
            b[o..o + d.spatial].chunks_exact(8),
        );
        for (xa, xb) in (&mut ca).zip(&mut cb) {
            for k in 0..8 {
                lanes[k] += f(xa[k], xb[k]);
            }
        }
        for (p, q) in ca.remainder().iter().zip(cb.remainder()) {
            tail += f(*p, *q);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Runs `f(c, a_c, b_c)` over channels, in parallel when the tensor is large.
fn per_channel<E: Elem>(
    d: &BatchNormDims,
    a: &mut [E],
    b: &mut [E],
    f: impl Fn(usize, &mut E, &mut E) + Send + Sync,
) {
    let big = d.batch * d.channels * d.spatial >= PAR_MIN;
    pieces2(a, 1, b, 1, d.channels, big, |c, x, y| {
        f(c, &mut x[0], &mut y[0])
    });
}

pub(crate) fn batch_norm_stats<E: Elem>(
    d: &BatchNormDims,
    x: &[E],
    mean: &mut [E],
    var: &mut [E],
) -> Result<()> {
    let m = (d.batch * d.spatial) as f64;
    per_channel(d, mean, var, |c, mu, v| {
        crate::simd::wide(
            #[inline(always)]
            || {
                let mean = channel_sum(d, c, x, x, |v, _| v.f64()) / m;
                let var = channel_sum(d, c, x, x, |v, _| {
                    let t = v.f64() - mean;
                    t * t
                }) / m;
                *mu = E::of(mean);
                *v = E::of(var);
            },
        )
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_running<E: Elem>(
    d: &BatchNormDims,
    momentum: f64,
    mean: &[E],
    var: &[E],
    rm: &mut [E],
    rv: &mut [E],
    tracked: &mut [E],
) -> Result<()> {
    let c = d.channels;
    let count = (d.batch * d.spatial) as f64;
    let (keep, m) = (E::of(1.0 - momentum), E::of(momentum));
    let unbias = E::of(count / (count - 1.0));
    for i in 0..c {
        rm[i] = keep * rm[i] + m * mean[i];
        rv[i] = keep * rv[i] + m * var[i] * unbias;
    }
    tracked[0] = tracked[0] + E::one();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_fwd<E: Elem>(
    d: &BatchNormDims,
    x: &[E],
    mean: &[E],
    var: &[E],
    gamma: &[E],
    beta: &[E],
    y: &mut [E],
) -> Result<()> {
    let n = d.batch * d.channels * d.spatial;
    let eps = E::of(d.eps);
    pieces(&mut y[..n], d.spatial, |k, row| {
        let c = k % d.channels;
        let scale = gamma[c] / (var[c] + eps).sqrt();
        let (mu, b) = (mean[c], beta[c]);
        crate::simd::wide(|| {
            for (v, xv) in row.iter_mut().zip(&x[k * d.spatial..][..d.spatial]) {
                *v = (*xv - mu) * scale + b;
            }
        })
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_bwd<E: Elem>(
    d: &BatchNormDims,
    x: &[E],
    mean: &[E],
    var: &[E],
    gamma: &[E],
    dy: &[E],
    dx: Option<(&mut Vec<E>, Acc)>,
    dgamma: &mut [E],
    dbeta: &mut [E],
    gacc: Acc,
    scratch: &mut [E],
) -> Result<()> {
    let (n, ch) = (d.batch * d.channels * d.spatial, d.channels);
    let eps = d.eps;
    let inv = |c: usize| 1.0 / (var[c].f64() + eps).sqrt();
    // Pass 1: Σdy and Σdy·x̂ per channel.
    let (sdy, sdyx) = scratch[..2 * ch].split_at_mut(ch);
    per_channel(d, sdy, sdyx, |c, a, b| {
        let (mu, is) = (mean[c].f64(), inv(c));
        crate::simd::wide(
            #[inline(always)]
            || {
                *a = E::of(channel_sum(d, c, dy, dy, |g, _| g.f64()));
                *b = E::of(channel_sum(d, c, dy, x, |g, v| g.f64() * (v.f64() - mu)) * is);
            },
        )
    });
    for c in 0..ch {
        gacc.put(&mut dbeta[c], sdy[c]);
        gacc.put(&mut dgamma[c], sdyx[c]);
    }
    // Pass 2: dx = (γ/σ)·(dy − Σdy/M − x̂·Σ(dy·x̂)/M).
    if let Some((dx, acc)) = dx {
        let m = E::of((d.batch * d.spatial) as f64);
        let (sdy, sdyx) = (&*sdy, &*sdyx);
        pieces(&mut dx[..n], d.spatial, |k, row| {
            let c = k % ch;
            let is = E::of(inv(c));
            let (mu, scale) = (mean[c], gamma[c] * is);
            let (a, b) = (sdy[c] / m, sdyx[c] / m);
            let (xr, gr) = (
                &x[k * d.spatial..][..d.spatial],
                &dy[k * d.spatial..][..d.spatial],
            );
            crate::simd::wide(
                #[inline(always)]
                || {
                    for ((v, xv), g) in row.iter_mut().zip(xr).zip(gr) {
                        let xh = (*xv - mu) * is;
                        acc.put(v, scale * (*g - a - xh * b));
                    }
                },
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::testing::{at_baseline_width, bits};
    use rand::Rng;

    /// The statistics, the normalisation and the backward through
    /// [`crate::simd::wide`] give the baseline width's values bit for bit
    /// (IEEE operations in a fixed order at any width), in f32 and f64, on
    /// planes whose length leaves remainders of the eight-lane sums. The
    /// tensors stay under `PAR_MIN`, so every loop runs on this thread and
    /// under its kernel cap.
    fn wide_is_bitwise<E: Elem>() {
        let d = BatchNormDims {
            batch: 3,
            channels: 5,
            spatial: 37,
            eps: 1e-5,
        };
        let n = d.batch * d.channels * d.spatial;
        assert!(n < PAR_MIN);
        let mut r = crate::rng(7);
        let mut draw = |len: usize, scale: f64, shift: f64| -> Vec<E> {
            (0..len)
                .map(|_| E::of(shift + scale * r.random_range(-1.0..1.0)))
                .collect()
        };
        let (x, dy) = (draw(n, 3.0, 0.5), draw(n, 1.0, 0.0));
        let (gamma, beta) = (draw(d.channels, 0.5, 1.0), draw(d.channels, 0.5, 0.0));
        let run = || {
            let (mut mean, mut var) = (vec![E::zero(); d.channels], vec![E::zero(); d.channels]);
            batch_norm_stats(&d, &x, &mut mean, &mut var).unwrap();
            let mut y = vec![E::zero(); n];
            batch_norm_fwd(&d, &x, &mean, &var, &gamma, &beta, &mut y).unwrap();
            let mut dx = vec![E::one(); n];
            let (mut dg, mut db) = (vec![E::zero(); d.channels], vec![E::zero(); d.channels]);
            let mut scratch = vec![E::zero(); 2 * d.channels];
            batch_norm_bwd(
                &d,
                &x,
                &mean,
                &var,
                &gamma,
                &dy,
                Some((&mut dx, Acc::Add)),
                &mut dg,
                &mut db,
                Acc::Set,
                &mut scratch,
            )
            .unwrap();
            [mean, var, y, dx, dg, db].map(|v| bits(&v))
        };
        let wide = run();
        let base = at_baseline_width(run);
        let names = ["mean", "var", "y", "dx", "dgamma", "dbeta"];
        for ((w, b), name) in wide.iter().zip(&base).zip(names) {
            assert_eq!(w, b, "{name}: wide and baseline widths differ");
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
