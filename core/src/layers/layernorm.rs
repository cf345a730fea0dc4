//! Layer normalisation over the last dimension (PyTorch's
//! `nn.LayerNorm(D)`), with its kernel family, [`LayerNormKernels`]: the
//! layer, the kernels' trait and their CPU bodies are this one file (the CUDA
//! source is `cuda/src/kernels/layernorm.cu`).
//!
//! The input `S` is seen as rows of the last dimension's `D` values (`rows =
//! batch · numel(S)/D`: `[D]` gives one row per sample, `[T, D]` one per
//! position). Per row, with the biased variance:
//!
//! * forward: `μ = Σx/D`, `σ = √(Σ(x − μ)²/D + ε)`, `x̂ = (x − μ)/σ`,
//!   `y = x̂·γ + β`;
//! * backward, with `g = ∂L/∂y · γ`: `∂L/∂γ = Σ_rows ∂L/∂y · x̂`,
//!   `∂L/∂β = Σ_rows ∂L/∂y`, and
//!   `∂L/∂x = (1/σ)·(g − mean(g) − x̂·mean(g·x̂))` (the means over the row's
//!   `D` values), the result of pushing `g` through `x̂ = (x − μ)/σ` with
//!   `∂μ/∂x = 1/D` and `∂σ²/∂x = 2(x − μ)/D`.
//!
//! Evaluation and training are the same computation (no running statistics).
//! Cached: each row's `μ` and `1/σ` (`x̂` is recomputed from the input, which
//! the tape holds).
//!
//! Options as PyTorch: `eps = 1e-5`; `elementwise_affine = false` (no
//! parameters: `γ = 1`, `β = 0`); `bias = false` (`γ` only, nanoGPT's
//! LayerNorm). Parameters `weight` (γ, ones) and `bias` (β, zeros), `[D]`.
//!
//! # Shapes
//! `LayerNorm<E, D, S, N>` maps `S` to `S`; `N` is the last dimension of `S`
//! (checked by [`Build`], and by `network!` at expansion time).
//! [`LayerNorm1d<E, D, N>`] is `S = S1<N>`.

use super::conv_common::prepare_dx;
use super::fit;
use crate::device::{need, Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::cpu_util::{pieces, pieces2, PAR_MIN};
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::{Shape, S1};
use crate::tensor::Tensor;
use crate::{Cpu, Rng};
use std::marker::PhantomData;

// ---- the kernel family ---------------------------------------------------------

/// The layout a layer-normalisation kernel sees: `rows` rows of `cols`
/// values, normalised one by one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormDims {
    /// Rows (`batch · numel/cols`).
    pub rows: usize,
    /// Values per row (the normalised width).
    pub cols: usize,
    /// ε.
    pub eps: f64,
}

/// The layer-normalisation kernels of a device, for element type `E`.
///
/// Used by [`LayerNorm`], which states `D: LayerNormKernels<E>`, so a device
/// without them cannot compile a network that uses it. Layers call the
/// provided methods, which check arguments and lengths once for every device
/// and then call the `raw_` body that the device implements. `stats` holds
/// `[μ, 1/σ]` per row (`2·rows` values); an absent `γ` is 1, an absent `β` 0.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no layer-normalisation kernels for `{E}`",
    label = "needed by LayerNorm"
)]
pub trait LayerNormKernels<E: Elem>: Backend<E> {
    /// Per row: `μ = Σx/D`, `σ = √(Σ(x − μ)²/D + ε)` (two passes), `stats =
    /// [μ, 1/σ]`, `y = (x − μ)/σ·γ + β`.
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn layer_norm_fwd(
        &self,
        d: &LayerNormDims,
        x: &Self::Buf<E>,
        gamma: Option<&Self::Buf<E>>,
        beta: Option<&Self::Buf<E>>,
        y: &mut Self::Buf<E>,
        stats: &mut Self::Buf<E>,
    ) -> Result<()> {
        let n = d.rows * d.cols;
        need(self, "layer_norm_fwd x", x, n)?;
        need(self, "layer_norm_fwd y", y, n)?;
        need(self, "layer_norm_fwd stats", stats, 2 * d.rows)?;
        if let Some(g) = gamma {
            need(self, "layer_norm_fwd weight", g, d.cols)?;
        }
        if let Some(b) = beta {
            need(self, "layer_norm_fwd bias", b, d.cols)?;
        }
        self.raw_layer_norm_fwd(d, x, gamma, beta, y, stats)
    }
    /// With `x̂ = (x − μ)/σ` from `stats` and `g = dy·γ`:
    /// `dgamma (gacc)= Σ_rows dy·x̂`, `dbeta (gacc)= Σ_rows dy` (each when
    /// given), and, when `dx` is given,
    /// `dx (acc)= (1/σ)·(g − mean(g) − x̂·mean(g·x̂))` per row.
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn layer_norm_bwd(
        &self,
        d: &LayerNormDims,
        x: &Self::Buf<E>,
        stats: &Self::Buf<E>,
        gamma: Option<&Self::Buf<E>>,
        dy: &Self::Buf<E>,
        dx: Option<(&mut Self::Buf<E>, Acc)>,
        dgamma: Option<&mut Self::Buf<E>>,
        dbeta: Option<&mut Self::Buf<E>>,
        gacc: Acc,
    ) -> Result<()> {
        let n = d.rows * d.cols;
        need(self, "layer_norm_bwd x", x, n)?;
        need(self, "layer_norm_bwd dy", dy, n)?;
        need(self, "layer_norm_bwd stats", stats, 2 * d.rows)?;
        if let Some(g) = gamma {
            need(self, "layer_norm_bwd weight", g, d.cols)?;
        }
        if let Some((dx, _)) = &dx {
            need(self, "layer_norm_bwd dx", &**dx, n)?;
        }
        if let Some(g) = &dgamma {
            need(self, "layer_norm_bwd weight gradient", &**g, d.cols)?;
        }
        if let Some(b) = &dbeta {
            need(self, "layer_norm_bwd bias gradient", &**b, d.cols)?;
        }
        self.raw_layer_norm_bwd(d, x, stats, gamma, dy, dx, dgamma, dbeta, gacc)
    }
    /// Body of [`LayerNormKernels::layer_norm_fwd`] (arguments already checked).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_layer_norm_fwd(
        &self,
        d: &LayerNormDims,
        x: &Self::Buf<E>,
        gamma: Option<&Self::Buf<E>>,
        beta: Option<&Self::Buf<E>>,
        y: &mut Self::Buf<E>,
        stats: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`LayerNormKernels::layer_norm_bwd`] (arguments already checked).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_layer_norm_bwd(
        &self,
        d: &LayerNormDims,
        x: &Self::Buf<E>,
        stats: &Self::Buf<E>,
        gamma: Option<&Self::Buf<E>>,
        dy: &Self::Buf<E>,
        dx: Option<(&mut Self::Buf<E>, Acc)>,
        dgamma: Option<&mut Self::Buf<E>>,
        dbeta: Option<&mut Self::Buf<E>>,
        gacc: Acc,
    ) -> Result<()>;
}

// ---- CPU bodies ------------------------------------------------------------------

impl<E: Elem> LayerNormKernels<E> for Cpu {
    fn raw_layer_norm_fwd(
        &self,
        d: &LayerNormDims,
        x: &Vec<E>,
        gamma: Option<&Vec<E>>,
        beta: Option<&Vec<E>>,
        y: &mut Vec<E>,
        stats: &mut Vec<E>,
    ) -> Result<()> {
        let (rows, cols) = (d.rows, d.cols);
        if rows * cols == 0 {
            return Ok(());
        }
        let big = rows * cols >= PAR_MIN;
        pieces2(
            &mut y[..rows * cols],
            cols,
            &mut stats[..2 * rows],
            2,
            rows,
            big,
            |r, yr, st| {
                let xr = &x[r * cols..][..cols];
                let mu = xr.iter().map(|v| v.f64()).sum::<f64>() / cols as f64;
                let var = xr.iter().map(|v| (v.f64() - mu).powi(2)).sum::<f64>() / cols as f64;
                let is = 1.0 / (var + d.eps).sqrt();
                st[0] = E::of(mu);
                st[1] = E::of(is);
                let (mu, is) = (E::of(mu), E::of(is));
                for (j, (v, &xv)) in yr.iter_mut().zip(xr).enumerate() {
                    let h = (xv - mu) * is;
                    let g = gamma.map_or(E::one(), |g| g[j]);
                    let b = beta.map_or(E::zero(), |b| b[j]);
                    *v = h * g + b;
                }
            },
        );
        Ok(())
    }

    fn raw_layer_norm_bwd(
        &self,
        d: &LayerNormDims,
        x: &Vec<E>,
        stats: &Vec<E>,
        gamma: Option<&Vec<E>>,
        dy: &Vec<E>,
        dx: Option<(&mut Vec<E>, Acc)>,
        dgamma: Option<&mut Vec<E>>,
        dbeta: Option<&mut Vec<E>>,
        gacc: Acc,
    ) -> Result<()> {
        let (rows, cols) = (d.rows, d.cols);
        if cols == 0 {
            return Ok(());
        }
        let xhat = |r: usize, j: usize| (x[r * cols + j] - stats[2 * r]) * stats[2 * r + 1];
        // Parameter gradients: one column each, summed over the rows in order, in f64.
        if let Some(dg) = dgamma {
            pieces(&mut dg[..cols], 1, |j, v| {
                let s: f64 = (0..rows)
                    .map(|r| dy[r * cols + j].f64() * xhat(r, j).f64())
                    .sum();
                gacc.put(&mut v[0], E::of(s));
            });
        }
        if let Some(db) = dbeta {
            pieces(&mut db[..cols], 1, |j, v| {
                let s: f64 = (0..rows).map(|r| dy[r * cols + j].f64()).sum();
                gacc.put(&mut v[0], E::of(s));
            });
        }
        // dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ, row by row.
        if let Some((dx, acc)) = dx {
            pieces(&mut dx[..rows * cols], cols, |r, row| {
                let g = |j: usize| dy[r * cols + j] * gamma.map_or(E::one(), |g| g[j]);
                let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                for j in 0..cols {
                    let gj = g(j).f64();
                    sg += gj;
                    sgx += gj * xhat(r, j).f64();
                }
                let (mg, mgx) = (E::of(sg / cols as f64), E::of(sgx / cols as f64));
                let is = stats[2 * r + 1];
                for (j, v) in row.iter_mut().enumerate() {
                    acc.put(v, is * (g(j) - mg - xhat(r, j) * mgx));
                }
            });
        }
        Ok(())
    }
}

// ---- the layer -------------------------------------------------------------------

/// Options of a layer normalisation (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormConfig {
    /// Added to the variance before the square root (default `1e-5`).
    pub eps: f64,
    /// Learned `γ` (and `β`) (default `true`); `false`: no parameters.
    pub elementwise_affine: bool,
    /// Learned `β` (default `true`; only with `elementwise_affine`).
    pub bias: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
        }
    }
}

/// Layer normalisation of inputs `S` over their last dimension `N` (see the
/// module doc).
pub struct LayerNorm<E: Elem, D: Backend<E>, S: Shape, const N: usize> {
    /// γ, `[N]` (absent without `elementwise_affine`).
    pub weight: Option<Tensor<S1<N>, E, D>>,
    /// β, `[N]` (absent without `elementwise_affine` or with `bias = false`).
    pub bias: Option<Tensor<S1<N>, E, D>>,
    /// ε.
    pub eps: f64,
    /// The device (for the cache, also without parameters).
    dev: D,
    _s: PhantomData<S>,
}

/// `nn.LayerNorm(N)` on features `[N]`.
pub type LayerNorm1d<E, D, const N: usize> = LayerNorm<E, D, S1<N>, N>;

/// Gradients of a [`LayerNorm`] (present where the parameter is).
pub struct LayerNormGrads<E: Elem, D: Backend<E>, const N: usize> {
    /// `∂L/∂γ`.
    pub weight: Option<Tensor<S1<N>, E, D>>,
    /// `∂L/∂β`.
    pub bias: Option<Tensor<S1<N>, E, D>>,
}

/// Each row's `[μ, 1/σ]` from the last forward pass.
pub struct LayerNormCache<E: Elem, D: Backend<E>> {
    stats: D::Buf<E>,
}

impl<E: Elem, D: Backend<E>, S: Shape, const N: usize> LayerNorm<E, D, S, N> {
    fn dims(&self, batch: usize) -> LayerNormDims {
        LayerNormDims {
            rows: batch * (S::NUMEL / N.max(1)),
            cols: N,
            eps: self.eps,
        }
    }
}

impl<E: Elem, D: Backend<E>, S: Shape, const N: usize> Build<E, D> for LayerNorm<E, D, S, N> {
    type Config = LayerNormConfig;
    fn build(dev: &D, _: &mut Rng, cfg: LayerNormConfig) -> Result<Self> {
        if N == 0 || S::DIMS.last() != Some(&N) {
            return Err(Error::invalid(
                "LayerNorm",
                format!(
                    "normalised width {N} is not the last dimension of input shape {:?}",
                    S::DIMS
                ),
            ));
        }
        if cfg.eps.is_nan() || cfg.eps <= 0.0 {
            return Err(Error::invalid(
                "LayerNorm",
                format!("need eps > 0, got {}", cfg.eps),
            ));
        }
        let weight = match cfg.elementwise_affine {
            true => Some(Tensor::from_vec(dev, 1, vec![E::one(); N])?),
            false => None,
        };
        let bias = match cfg.elementwise_affine && cfg.bias {
            true => Some(Tensor::zeros(dev, 1)?),
            false => None,
        };
        Ok(LayerNorm {
            weight,
            bias,
            eps: cfg.eps,
            dev: dev.clone(),
            _s: PhantomData,
        })
    }
}

impl<E: Elem, D: Backend<E>, S: Shape, const N: usize> Module<E, D> for LayerNorm<E, D, S, N> {
    type Grads = LayerNormGrads<E, D, N>;
    fn grads(&self) -> Result<Self::Grads> {
        let like = |p: &Option<Tensor<S1<N>, E, D>>| {
            p.as_ref().map(|t| Tensor::zeros(t.device(), 1)).transpose()
        };
        Ok(LayerNormGrads {
            weight: like(&self.weight)?,
            bias: like(&self.bias)?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        for (name, p) in [("weight", &self.weight), ("bias", &self.bias)] {
            if let Some(t) = p {
                f(&path.child(name), ParamRef::of(t, Role::Param));
            }
        }
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        let pairs = [
            ("weight", &mut self.weight, &g.weight),
            ("bias", &mut self.bias, &g.bias),
        ];
        for (name, p, g) in pairs {
            if let Some(t) = p {
                f(&path.child(name), ParamMut::of(t, g.as_ref()));
            }
        }
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        for (name, p) in [("weight", &mut self.weight), ("bias", &mut self.bias)] {
            if let Some(t) = p {
                f(&path.child(name), ParamMut::of(t, None), Role::Param);
            }
        }
    }
}

impl<E: Elem, D: LayerNormKernels<E>, S: Shape, const N: usize> LayerNorm<E, D, S, N> {
    /// The layer on single rows: each sample of `x` is one row of `N`,
    /// normalised as every row of `S` is (decoding one position at a time,
    /// see [`crate::layers::KvCache`]); `cache` as [`Layer::cache`] makes it.
    pub fn forward_rows(
        &self,
        x: &Tensor<S1<N>, E, D>,
        y: &mut Tensor<S1<N>, E, D>,
        cache: &mut LayerNormCache<E, D>,
    ) -> Result<()> {
        y.set_batch(x.batch())?;
        let d = LayerNormDims {
            rows: x.batch(),
            cols: N,
            eps: self.eps,
        };
        let dev = x.device();
        dev.resize(&mut cache.stats, 2 * d.rows)?;
        let (g, b) = (
            self.weight.as_ref().map(|t| &t.buf),
            self.bias.as_ref().map(|t| &t.buf),
        );
        dev.layer_norm_fwd(&d, &x.buf, g, b, &mut y.buf, &mut cache.stats)
    }
}

impl<E: Elem, D: LayerNormKernels<E>, S: Shape, const N: usize> Layer<E, D>
    for LayerNorm<E, D, S, N>
{
    type In = S;
    type Out = S;
    type Cache = LayerNormCache<E, D>;
    const FLOPS: usize = 4 * S::NUMEL;
    fn cache(&self) -> Result<Self::Cache> {
        Ok(LayerNormCache {
            stats: self.dev.zeros(0)?,
        })
    }

    /// `y = (x − μ)/σ·γ + β` per row; the row statistics go to the cache.
    fn forward(
        &self,
        x: &Tensor<S, E, D>,
        y: &mut Tensor<S, E, D>,
        cache: &mut Self::Cache,
    ) -> Result<()> {
        fit(y, x.batch())?;
        let d = self.dims(x.batch());
        let dev = x.device();
        dev.resize(&mut cache.stats, 2 * d.rows)?;
        let (g, b) = (
            self.weight.as_ref().map(|t| &t.buf),
            self.bias.as_ref().map(|t| &t.buf),
        );
        dev.layer_norm_fwd(&d, &x.buf, g, b, &mut y.buf, &mut cache.stats)
    }

    /// The same as evaluation (no running statistics).
    fn forward_train(
        &mut self,
        x: &Tensor<S, E, D>,
        y: &mut Tensor<S, E, D>,
        cache: &mut Self::Cache,
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, cache)
    }

    /// `dγ (gacc)= Σ dy·x̂`, `dβ (gacc)= Σ dy`, `dx (acc)= (1/σ)(g − mean g − x̂·mean(g·x̂))`.
    fn backward(
        &self,
        x: &Tensor<S, E, D>,
        _: &Tensor<S, E, D>,
        cache: &mut Self::Cache,
        dy: &Tensor<S, E, D>,
        dx: Option<(&mut Tensor<S, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let d = self.check_backward(x, dy, cache)?;
        let dev = x.device();
        let dx = match dx {
            Some((t, acc)) => {
                prepare_dx(t, acc, x.batch())?;
                Some((&mut t.buf, acc))
            }
            None => None,
        };
        let g = self.weight.as_ref().map(|t| &t.buf);
        let (dg, db) = (
            grads.weight.as_mut().map(|t| &mut t.buf),
            grads.bias.as_mut().map(|t| &mut t.buf),
        );
        dev.layer_norm_bwd(&d, &x.buf, &cache.stats, g, &dy.buf, dx, dg, db, gacc)
    }
}

impl<E: Elem, D: LayerNormKernels<E>, S: Shape, const N: usize> LayerNorm<E, D, S, N> {
    /// The checks of both backward passes (batches agree, the cache holds
    /// this input's row statistics), and the kernels' dims.
    fn check_backward(
        &self,
        x: &Tensor<S, E, D>,
        dy: &Tensor<S, E, D>,
        cache: &LayerNormCache<E, D>,
    ) -> Result<LayerNormDims> {
        crate::error::check_batch(
            "LayerNorm backward",
            "input",
            x.batch(),
            "output gradient",
            dy.batch(),
        )?;
        let d = self.dims(x.batch());
        let dev = x.device();
        if dev.len(&cache.stats) < 2 * d.rows {
            return Err(Error::invalid(
                "LayerNorm backward",
                format!(
                    "the cache holds the statistics of {} rows but the input has {} (run forward on this input first)",
                    dev.len(&cache.stats) / 2,
                    d.rows
                ),
            ));
        }
        Ok(d)
    }
}

/// The input gradient alone, `dx (acc)= (1/σ)(g − mean g − x̂·mean(g·x̂))`
/// per row with `g = dy·γ`: the backward kernel without its parameter
/// sums (they are optional there), so nothing extra is kept or allocated.
impl<E: Elem, D: LayerNormKernels<E>, S: Shape, const N: usize> crate::input_grad::InputGrad<E, D>
    for LayerNorm<E, D, S, N>
{
    fn backward_input(
        &self,
        x: &Tensor<S, E, D>,
        _y: &Tensor<S, E, D>,
        cache: &mut LayerNormCache<E, D>,
        dy: &Tensor<S, E, D>,
        dx: Option<(&mut Tensor<S, E, D>, Acc)>,
        _mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        let d = self.check_backward(x, dy, cache)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        prepare_dx(dx, acc, x.batch())?;
        let g = self.weight.as_ref().map(|t| &t.buf);
        let dx = Some((&mut dx.buf, acc));
        x.device().layer_norm_bwd(
            &d,
            &x.buf,
            &cache.stats,
            g,
            &dy.buf,
            dx,
            None,
            None,
            Acc::Set,
        )
    }
}

/// ONNX: `LayerNormalization(x, γ, β, axis = -1, epsilon)` (opset 17's
/// operator, the same biased variance); `γ`, `β` are `{path}.weight`,
/// `{path}.bias`. Without `weight` (`elementwise_affine = false`) `γ` is a
/// constant of ones (ONNX requires one); without `bias`, `β` is left out.
impl<E: Elem, D: Backend<E>, S: Shape, const N: usize> Onnx for LayerNorm<E, D, S, N> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let scale = match &self.weight {
            Some(w) => g.param(&join(at, "weight"), w)?,
            None => g.values(&join(at, "ones"), &[N], &[E::one(); N])?,
        };
        let mut ins = vec![x.to_string(), scale];
        if let Some(b) = &self.bias {
            ins.push(g.param(&join(at, "bias"), b)?);
        }
        let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        let attrs = vec![graph::int("axis", -1), graph::float("epsilon", self.eps)];
        Ok(vec![g.op("LayerNormalization", at, &ins, attrs)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::S2;
    use crate::testing::{check_layer, random_input};

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn values_and_gradients() {
        let mut l = LayerNorm1d::<f64, Cpu, 4>::build(&Cpu, &mut crate::rng(0), Default::default())
            .unwrap();
        assert_eq!(l.weight.as_ref().unwrap().to_vec().unwrap(), vec![1.0; 4]);
        assert_eq!(l.bias.as_ref().unwrap().to_vec().unwrap(), vec![0.0; 4]);
        l.weight
            .as_mut()
            .unwrap()
            .copy_from_slice(&[1., 2., 1., -1.])
            .unwrap();
        l.bias
            .as_mut()
            .unwrap()
            .copy_from_slice(&[0., 0., 0.5, 0.])
            .unwrap();
        // x = (1, 2, 3, 6): μ = 3, σ² = 3.5, x̂ = (x − 3)/√(3.5 + 1e-5).
        let x = Tensor::<S1<4>, f64>::from_slice(&Cpu, &[1., 2., 3., 6.]).unwrap();
        let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
        l.forward(&x, &mut y, &mut c).unwrap();
        let want = [
            -1.0690434404458735,
            -1.0690434404458735,
            0.5,
            -1.6035651606688102,
        ];
        close(&y.to_vec().unwrap(), &want, 1e-15);
        let dy = Tensor::<S1<4>, f64>::from_slice(&Cpu, &[1., 0., 0., 0.]).unwrap();
        let (mut dx, mut g) = (Tensor::empty(&Cpu).unwrap(), l.grads().unwrap());
        l.backward(
            &x,
            &y,
            &mut c,
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut g,
            Acc::Set,
        )
        .unwrap();
        let want = [
            0.2481712350179496,
            -0.20999045763036064,
            -0.1336304300557342,
            0.0954496526681452,
        ];
        close(&dx.to_vec().unwrap(), &want, 1e-15);
        close(
            &g.weight.unwrap().to_vec().unwrap(),
            &[-1.0690434404458735, 0., 0., 0.],
            1e-15,
        );
        assert_eq!(g.bias.unwrap().to_vec().unwrap(), vec![1., 0., 0., 0.]);
    }

    #[test]
    fn options_and_names() {
        let names = |cfg: LayerNormConfig| {
            let l = LayerNorm1d::<f32, Cpu, 3>::build(&Cpu, &mut crate::rng(0), cfg).unwrap();
            let mut seen = Vec::new();
            l.visit(&Path::ROOT.child("ln"), &mut |p, r| {
                seen.push(format!("{p} {:?}", r.dims))
            });
            seen
        };
        let d = LayerNormConfig::default();
        assert_eq!(names(d), ["ln.weight [3]", "ln.bias [3]"]);
        assert_eq!(
            names(LayerNormConfig { bias: false, ..d }),
            ["ln.weight [3]"]
        );
        let none = LayerNormConfig {
            elementwise_affine: false,
            ..d
        };
        assert!(names(none).is_empty());
        // The width must be the last dimension.
        let e = LayerNorm::<f32, Cpu, S2<3, 4>, 3>::build(&Cpu, &mut crate::rng(0), d)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("LayerNorm") && e.contains("width 3"), "{e}");
    }

    #[test]
    fn rows_of_a_sequence_are_normalised_one_by_one() {
        // [T, D] = [3, 5]: every position is its own row.
        let cfg = LayerNormConfig {
            elementwise_affine: false,
            ..Default::default()
        };
        let l = LayerNorm::<f64, Cpu, S2<3, 5>, 5>::build(&Cpu, &mut crate::rng(0), cfg).unwrap();
        let xv = random_input(2 * 15, &mut crate::rng(1));
        let x = Tensor::<S2<3, 5>, f64>::from_slice(&Cpu, &xv).unwrap();
        let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
        l.forward(&x, &mut y, &mut c).unwrap();
        let y = y.to_vec().unwrap();
        for r in 0..6 {
            let row = &xv[r * 5..][..5];
            let mu = row.iter().sum::<f64>() / 5.0;
            let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 5.0;
            for j in 0..5 {
                let want = (row[j] - mu) / (var + 1e-5).sqrt();
                assert!((y[r * 5 + j] - want).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn gradchecks() {
        let mut rng = crate::rng(5);
        let mut a = LayerNorm1d::<f64, Cpu, 6>::build(&Cpu, &mut rng, Default::default()).unwrap();
        a.weight
            .as_mut()
            .unwrap()
            .copy_from_slice(&random_input(6, &mut rng))
            .unwrap();
        a.bias
            .as_mut()
            .unwrap()
            .copy_from_slice(&random_input(6, &mut rng))
            .unwrap();
        assert!(check_layer(&mut a, 3, 1).unwrap() < 1e-6);
        let no_bias = LayerNormConfig {
            bias: false,
            ..Default::default()
        };
        let mut b = LayerNorm::<f64, Cpu, S2<3, 4>, 4>::build(&Cpu, &mut rng, no_bias).unwrap();
        b.weight
            .as_mut()
            .unwrap()
            .copy_from_slice(&random_input(4, &mut rng))
            .unwrap();
        assert!(check_layer(&mut b, 2, 2).unwrap() < 1e-6);
        let plain = LayerNormConfig {
            elementwise_affine: false,
            eps: 1e-3,
            ..Default::default()
        };
        let mut c = LayerNorm::<f64, Cpu, S2<2, 5>, 5>::build(&Cpu, &mut rng, plain).unwrap();
        assert!(check_layer(&mut c, 2, 3).unwrap() < 1e-6);
    }
}
