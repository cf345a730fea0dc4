//! Batch normalisation (PyTorch's `nn.BatchNorm1d` on `[N, C]` and
//! `nn.BatchNorm2d` on `[N, C, H, W]`), with PyTorch's conventions so weights
//! and buffers exchange unchanged.
//!
//! Per channel `c`, over the `M = N·H·W` values of the batch (`M = N` for
//! 1-D):
//!
//! * training forward: `μ = Σx/M`, `σ² = Σ(x − μ)²/M` (biased),
//!   `x̂ = (x − μ)/√(σ² + ε)`, `y = γ·x̂ + β`; the running statistics move by
//!   momentum `m`: `running_mean ← (1 − m)·running_mean + m·μ`,
//!   `running_var ← (1 − m)·running_var + m·σ²·M/(M − 1)` (the **unbiased**
//!   variance, as PyTorch), `num_batches_tracked += 1`;
//! * evaluation forward: the same with `running_mean`, `running_var` in place
//!   of `μ`, `σ²`;
//! * backward (training statistics, which depend on every `x` of the channel):
//!   `∂L/∂β = Σ ∂L/∂y`, `∂L/∂γ = Σ ∂L/∂y · x̂`, and
//!   `∂L/∂x = (γ/√(σ² + ε)) · (∂L/∂y − mean(∂L/∂y) − x̂ · mean(∂L/∂y · x̂))`,
//!   the standard result of pushing `∂L/∂x̂ = γ·∂L/∂y` through `x̂ = (x − μ)/σ`
//!   with `∂μ/∂x = 1/M` and `∂σ²/∂x = 2(x − μ)/M`.
//!
//! Cached: the batch `μ` and `σ²` of each channel (`x̂` is recomputed from the
//! input, which the tape holds), plus a `2·C` scratch for the two sums of the
//! backward pass, and which forward ran last: `backward` after an evaluation
//! forward is the gradient of the evaluation function, with the running
//! statistics as constants: `∂L/∂β = Σ ∂L/∂y`, `∂L/∂γ = Σ ∂L/∂y · x̂` (that
//! `x̂` from the running statistics) and
//! `∂L/∂x = ∂L/∂y · γ/√(running_var + ε)`.
//!
//! [`InputGrad`](crate::InputGrad) (`backward_from`, Grad-CAM, saliency) is
//! the same backward for `∂L/∂x` alone, in the mode of the last forward: the
//! evaluation formula is the forward kernel applied to `∂L/∂y` with mean 0
//! and β 0; the training formula is the full backward kernel writing the two
//! parameter sums into two `C`-value buffers of the cache (made once with the
//! cache, so `backward_from` allocates nothing after its first call; `C`
//! values each, next to the `2·C` the cache already holds). Accumulating
//! (`Acc::Add`) in evaluation mode goes through an input-sized buffer of the
//! cache, grown on first use.
//!
//! Defaults `ε = 1e-5`, `m = 0.1`, `γ = 1`, `β = 0`, `running_mean = 0`,
//! `running_var = 1`. Parameters `weight` (γ) and `bias` (β); buffers
//! (`Role::Buffer`) `running_mean`, `running_var` and `num_batches_tracked`
//! (a one-element tensor of the element type, visited as a scalar of shape
//! `[]` with [`Role::Counter`], so checkpoints store it as PyTorch does: an
//! `int64`).
//!
//! # Shapes
//! `BatchNorm<E, D, S, C>` normalises input `S` (output `S`) whose first
//! dimension is `C`: [`BatchNorm1d<E, D, C>`] is `S = S1<C>`,
//! [`BatchNorm2d<E, D, C, H, W>`] is `S = S3<C, H, W>`. `weight`, `bias` and
//! the running statistics are `S1<C>`.

use super::conv_common::prepare_dx;
use super::fit;
use crate::device::{Acc, Backend, BatchNormDims};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::BatchNormKernels;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::{Shape, S1, S3};
use crate::tensor::Tensor;
use crate::Rng;
use std::marker::PhantomData;

/// Options of a batch normalisation (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root (default `1e-5`).
    pub eps: f64,
    /// Weight of the new batch in the running statistics (default `0.1`).
    pub momentum: f64,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// Batch normalisation of inputs `S` with `C` channels (see the module doc).
pub struct BatchNorm<E: Elem, D: Backend<E>, S: Shape, const C: usize> {
    /// γ, `[C]`.
    pub weight: Tensor<S1<C>, E, D>,
    /// β, `[C]`.
    pub bias: Tensor<S1<C>, E, D>,
    /// Running mean used in evaluation, `[C]`.
    pub running_mean: Tensor<S1<C>, E, D>,
    /// Running (unbiased) variance used in evaluation, `[C]`.
    pub running_var: Tensor<S1<C>, E, D>,
    /// Training batches seen (visited with PyTorch's scalar shape `[]`).
    pub num_batches_tracked: Tensor<S1<1>, E, D>,
    /// ε.
    pub eps: f64,
    /// Momentum of the running statistics.
    pub momentum: f64,
    _s: PhantomData<S>,
}

/// `nn.BatchNorm1d` over `C` features.
pub type BatchNorm1d<E, D, const C: usize> = BatchNorm<E, D, S1<C>, C>;
/// `nn.BatchNorm2d` over `C` channels of `H × W`.
pub type BatchNorm2d<E, D, const C: usize, const H: usize, const W: usize> =
    BatchNorm<E, D, S3<C, H, W>, C>;

/// Gradients of a [`BatchNorm`].
pub struct BatchNormGrads<E: Elem, D: Backend<E>, const C: usize> {
    /// `∂L/∂γ`.
    pub weight: Tensor<S1<C>, E, D>,
    /// `∂L/∂β`.
    pub bias: Tensor<S1<C>, E, D>,
}

/// Batch statistics of the last training step, and the buffers of the
/// input-gradient-only backward (see the module doc).
pub struct BatchNormCache<E: Elem, D: Backend<E>> {
    mean: D::Buf<E>,
    var: D::Buf<E>,
    scratch: D::Buf<E>,
    /// Whether the last forward was `forward_train` (batch statistics).
    train: bool,
    /// `C` zeros: the mean and β of the evaluation-mode `dx` (never written).
    zeros: D::Buf<E>,
    /// The parameter sums [`InputGrad`](crate::InputGrad) discards, `C` each.
    dgamma: D::Buf<E>,
    dbeta: D::Buf<E>,
    /// The evaluation-mode `dx` before it is added (`Acc::Add`); empty until then.
    tmp: D::Buf<E>,
}

impl<E: Elem, D: Backend<E>, S: Shape, const C: usize> BatchNorm<E, D, S, C> {
    fn dims(&self, batch: usize) -> BatchNormDims {
        BatchNormDims {
            batch,
            channels: C,
            spatial: S::NUMEL / C,
            eps: self.eps,
        }
    }
}

impl<E: Elem, D: Backend<E>, S: Shape, const C: usize> Build<E, D> for BatchNorm<E, D, S, C> {
    type Config = BatchNormConfig;
    fn build(dev: &D, _: &mut Rng, cfg: BatchNormConfig) -> Result<Self> {
        if S::DIMS.first() != Some(&C) {
            return Err(Error::invalid(
                "BatchNorm",
                format!(
                    "input shape {:?} does not start with its {C} channels",
                    S::DIMS
                ),
            ));
        }
        if !(cfg.eps > 0.0 && (0.0..=1.0).contains(&cfg.momentum)) {
            return Err(Error::invalid(
                "BatchNorm",
                format!("need eps > 0 and momentum in [0, 1], got {cfg:?}"),
            ));
        }
        let ones = Tensor::from_vec(dev, 1, vec![E::one(); C])?;
        Ok(BatchNorm {
            weight: ones.try_clone()?,
            bias: Tensor::zeros(dev, 1)?,
            running_mean: Tensor::zeros(dev, 1)?,
            running_var: ones,
            num_batches_tracked: Tensor::zeros(dev, 1)?,
            eps: cfg.eps,
            momentum: cfg.momentum,
            _s: PhantomData,
        })
    }
}

impl<E: Elem, D: Backend<E>, S: Shape, const C: usize> Module<E, D> for BatchNorm<E, D, S, C> {
    type Grads = BatchNormGrads<E, D, C>;
    fn grads(&self) -> Result<Self::Grads> {
        let dev = self.weight.device();
        Ok(BatchNormGrads {
            weight: Tensor::zeros(dev, 1)?,
            bias: Tensor::zeros(dev, 1)?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        f(
            &path.child("weight"),
            ParamRef::of(&self.weight, Role::Param),
        );
        f(&path.child("bias"), ParamRef::of(&self.bias, Role::Param));
        f(
            &path.child("running_mean"),
            ParamRef::of(&self.running_mean, Role::Buffer),
        );
        f(
            &path.child("running_var"),
            ParamRef::of(&self.running_var, Role::Buffer),
        );
        let t = &self.num_batches_tracked;
        f(
            &path.child("num_batches_tracked"),
            ParamRef {
                dims: &[],
                numel: 1,
                value: &t.buf,
                role: Role::Counter,
                dev: &t.dev,
            },
        );
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        f(
            &path.child("weight"),
            ParamMut::of(&mut self.weight, Some(&g.weight)),
        );
        f(
            &path.child("bias"),
            ParamMut::of(&mut self.bias, Some(&g.bias)),
        );
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        f(
            &path.child("weight"),
            ParamMut::of(&mut self.weight, None),
            Role::Param,
        );
        f(
            &path.child("bias"),
            ParamMut::of(&mut self.bias, None),
            Role::Param,
        );
        f(
            &path.child("running_mean"),
            ParamMut::of(&mut self.running_mean, None),
            Role::Buffer,
        );
        f(
            &path.child("running_var"),
            ParamMut::of(&mut self.running_var, None),
            Role::Buffer,
        );
        let t = &mut self.num_batches_tracked;
        let view = ParamMut {
            dims: &[],
            numel: 1,
            value: &mut t.buf,
            grad: None,
            dev: &t.dev,
        };
        f(&path.child("num_batches_tracked"), view, Role::Counter);
    }
}

impl<E: Elem, D: BatchNormKernels<E>, S: Shape, const C: usize> Layer<E, D>
    for BatchNorm<E, D, S, C>
{
    type In = S;
    type Out = S;
    type Cache = BatchNormCache<E, D>;
    const FLOPS: usize = 2 * S::NUMEL;
    fn cache(&self) -> Result<Self::Cache> {
        let dev = self.weight.device();
        Ok(BatchNormCache {
            mean: dev.zeros(C)?,
            var: dev.zeros(C)?,
            scratch: dev.zeros(2 * C)?,
            train: false,
            zeros: dev.zeros(C)?,
            dgamma: dev.zeros(C)?,
            dbeta: dev.zeros(C)?,
            tmp: dev.zeros(0)?,
        })
    }

    /// Evaluation: `y = (x − running_mean)/√(running_var + ε)·γ + β`.
    fn forward(
        &self,
        x: &Tensor<S, E, D>,
        y: &mut Tensor<S, E, D>,
        cache: &mut Self::Cache,
    ) -> Result<()> {
        fit(y, x.batch())?;
        cache.train = false;
        let d = self.dims(x.batch());
        let (rm, rv) = (&self.running_mean.buf, &self.running_var.buf);
        x.device().batch_norm_fwd(
            &d,
            &x.buf,
            rm,
            rv,
            &self.weight.buf,
            &self.bias.buf,
            &mut y.buf,
        )
    }

    /// Training: batch statistics (cached), running-statistics update, `y = γ·x̂ + β`.
    fn forward_train(
        &mut self,
        x: &Tensor<S, E, D>,
        y: &mut Tensor<S, E, D>,
        cache: &mut Self::Cache,
        _: &mut TrainCtx,
    ) -> Result<()> {
        let d = self.dims(x.batch());
        if d.batch * d.spatial < 2 {
            return Err(Error::invalid(
                "BatchNorm",
                format!(
                    "training needs more than 1 value per channel, got a batch of {} × {}",
                    d.batch, d.spatial
                ),
            ));
        }
        fit(y, x.batch())?;
        let dev = x.device();
        cache.train = true;
        dev.batch_norm_stats(&d, &x.buf, &mut cache.mean, &mut cache.var)?;
        let (rm, rv, nbt) = (
            &mut self.running_mean.buf,
            &mut self.running_var.buf,
            &mut self.num_batches_tracked.buf,
        );
        dev.batch_norm_running(&d, self.momentum, &cache.mean, &cache.var, rm, rv, nbt)?;
        dev.batch_norm_fwd(
            &d,
            &x.buf,
            &cache.mean,
            &cache.var,
            &self.weight.buf,
            &self.bias.buf,
            &mut y.buf,
        )
    }

    /// After `forward_train`: `dβ (gacc)= Σdy`, `dγ (gacc)= Σdy·x̂`,
    /// `dx (acc)= (γ/σ)(dy − mean(dy) − x̂·mean(dy·x̂))` (batch statistics).
    /// After `forward`: the same `dβ`, `dγ` with `x̂` from the running
    /// statistics, and `dx (acc)= dy·γ/√(running_var + ε)`.
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
        let d = self.check_backward(x, dy)?;
        let dx = match dx {
            Some((t, acc)) => {
                prepare_dx(t, acc, x.batch())?;
                Some((&mut t.buf, acc))
            }
            None => None,
        };
        let (dg, db) = (&mut grads.weight.buf, &mut grads.bias.buf);
        let c = &mut *cache;
        let dev = x.device();
        if c.train {
            return dev.batch_norm_bwd(
                &d,
                &x.buf,
                &c.mean,
                &c.var,
                &self.weight.buf,
                &dy.buf,
                dx,
                dg,
                db,
                gacc,
                &mut c.scratch,
            );
        }
        // Evaluation: the parameter sums with the running statistics' x̂, then dx.
        let (rm, rv) = (&self.running_mean.buf, &self.running_var.buf);
        let g = &self.weight.buf;
        dev.batch_norm_bwd(
            &d,
            &x.buf,
            rm,
            rv,
            g,
            &dy.buf,
            None,
            dg,
            db,
            gacc,
            &mut c.scratch,
        )?;
        match dx {
            Some(dx) => self.dx_eval(&d, dev, &dy.buf, c, dx),
            None => Ok(()),
        }
    }
}

impl<E: Elem, D: BatchNormKernels<E>, S: Shape, const C: usize> BatchNorm<E, D, S, C> {
    /// The batch check of both backward passes, and the kernels' dims.
    fn check_backward(&self, x: &Tensor<S, E, D>, dy: &Tensor<S, E, D>) -> Result<BatchNormDims> {
        crate::error::check_batch(
            "BatchNorm backward",
            "input",
            x.batch(),
            "output gradient",
            dy.batch(),
        )?;
        Ok(self.dims(x.batch()))
    }

    /// The evaluation-mode input gradient `dx (acc)= dy·γ/√(running_var + ε)`:
    /// the forward kernel on `dy` with mean 0 and β 0, straight into `dx`
    /// (`Set`) or through `cache.tmp` (`Add`).
    fn dx_eval(
        &self,
        d: &BatchNormDims,
        dev: &D,
        dy: &D::Buf<E>,
        c: &mut BatchNormCache<E, D>,
        (dx, acc): (&mut D::Buf<E>, Acc),
    ) -> Result<()> {
        let (rv, g, z) = (&self.running_var.buf, &self.weight.buf, &c.zeros);
        match acc {
            Acc::Set => dev.batch_norm_fwd(d, dy, z, rv, g, z, dx),
            Acc::Add => {
                let n = d.batch * d.channels * d.spatial;
                if dev.len(&c.tmp) < n {
                    dev.resize(&mut c.tmp, n)?;
                }
                dev.batch_norm_fwd(d, dy, z, rv, g, z, &mut c.tmp)?;
                dev.axpy(E::one(), &c.tmp, dx, n, Acc::Add)
            }
        }
    }
}

/// The input gradient alone, in the mode of the last forward (see the module
/// doc): after `forward`, `dx (acc)= dy·γ/√(running_var + ε)`; after
/// `forward_train`, `dx (acc)= (γ/σ)(dy − mean(dy) − x̂·mean(dy·x̂))` with the
/// batch statistics, the two parameter sums going to the cache's scratch.
impl<E: Elem, D: BatchNormKernels<E>, S: Shape, const C: usize> crate::input_grad::InputGrad<E, D>
    for BatchNorm<E, D, S, C>
{
    fn backward_input(
        &self,
        x: &Tensor<S, E, D>,
        _y: &Tensor<S, E, D>,
        cache: &mut BatchNormCache<E, D>,
        dy: &Tensor<S, E, D>,
        dx: Option<(&mut Tensor<S, E, D>, Acc)>,
        _mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        let d = self.check_backward(x, dy)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        prepare_dx(dx, acc, x.batch())?;
        let c = &mut *cache;
        let dev = x.device();
        if !c.train {
            return self.dx_eval(&d, dev, &dy.buf, c, (&mut dx.buf, acc));
        }
        dev.batch_norm_bwd(
            &d,
            &x.buf,
            &c.mean,
            &c.var,
            &self.weight.buf,
            &dy.buf,
            Some((&mut dx.buf, acc)),
            &mut c.dgamma,
            &mut c.dbeta,
            Acc::Set,
            &mut c.scratch,
        )
    }
}

/// ONNX: `BatchNormalization(x, weight, bias, running_mean, running_var)`
/// in inference mode (`training_mode = 0`: the running statistics), with
/// `epsilon`; the four tensors are initializers under their `state_dict`
/// names (`num_batches_tracked` takes no part in the computation and is not
/// written). ONNX normalises axis 1 of `[N, C, …]`, this layer's channel axis.
impl<E: Elem, D: Backend<E>, S: Shape, const C: usize> Onnx for BatchNorm<E, D, S, C> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let w = g.param(&join(at, "weight"), &self.weight)?;
        let b = g.param(&join(at, "bias"), &self.bias)?;
        let m = g.param(&join(at, "running_mean"), &self.running_mean)?;
        let v = g.param(&join(at, "running_var"), &self.running_var)?;
        let attrs = vec![
            graph::float("epsilon", self.eps),
            graph::float("momentum", 1.0 - self.momentum),
        ];
        Ok(vec![g.op(
            "BatchNormalization",
            at,
            &[x, &w, &b, &m, &v],
            attrs,
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random_input};
    use crate::Cpu;

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn train_and_eval_outputs_and_running_statistics() {
        let mut bn =
            BatchNorm1d::<f64, Cpu, 2>::build(&Cpu, &mut crate::rng(0), BatchNormConfig::default())
                .unwrap();
        bn.weight.copy_from_slice(&[2.0, 1.0]).unwrap();
        bn.bias.copy_from_slice(&[0.5, -1.0]).unwrap();
        let mut cache = bn.cache().unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        let eps = 1e-5f64;
        // Evaluation before any training: running statistics (0, 1).
        let x1 = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[1., 2., 3., 6.]).unwrap();
        bn.forward(&x1, &mut y, &mut cache).unwrap();
        let s = 1.0 / (1.0 + eps).sqrt();
        close(
            &y.to_vec().unwrap(),
            &[2. * s + 0.5, 2. * s - 1., 6. * s + 0.5, 6. * s - 1.],
            1e-12,
        );
        // Training on batch 1: means (2, 4), biased variances (1, 4), so x̂ = ∓1·(σ/√(σ²+ε)).
        bn.forward_train(&x1, &mut y, &mut cache, &mut TrainCtx::new(0))
            .unwrap();
        let (a, b) = (1.0 / (1.0 + eps).sqrt(), 2.0 / (4.0 + eps).sqrt());
        close(
            &y.to_vec().unwrap(),
            &[-2. * a + 0.5, -b - 1., 2. * a + 0.5, b - 1.],
            1e-12,
        );
        // Running: mean 0.1·(2, 4); var 0.9·1 + 0.1·(2, 8) (unbiased: ×2/1).
        close(&bn.running_mean.to_vec().unwrap(), &[0.2, 0.4], 1e-15);
        close(&bn.running_var.to_vec().unwrap(), &[1.1, 1.7], 1e-15);
        // Batch 2 of three samples: means (2, 0), unbiased variances (4, 4).
        let x2 = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[0., 0., 2., -2., 4., 2.]).unwrap();
        bn.forward_train(&x2, &mut y, &mut cache, &mut TrainCtx::new(0))
            .unwrap();
        close(
            &bn.running_mean.to_vec().unwrap(),
            &[0.9 * 0.2 + 0.2, 0.9 * 0.4],
            1e-15,
        );
        close(
            &bn.running_var.to_vec().unwrap(),
            &[0.9 * 1.1 + 0.4, 0.9 * 1.7 + 0.4],
            1e-15,
        );
        assert_eq!(bn.num_batches_tracked.to_vec().unwrap(), vec![2.0]);
        // Evaluation now uses the running statistics.
        let v = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[1.0, 1.0]).unwrap();
        bn.forward(&v, &mut y, &mut cache).unwrap();
        let want = [
            2.0 * (1.0 - 0.38) / (1.39f64 + eps).sqrt() + 0.5,
            (1.0 - 0.36) / (1.93f64 + eps).sqrt() - 1.0,
        ];
        close(&y.to_vec().unwrap(), &want, 1e-12);
        // One value per channel cannot be normalised in training.
        let one = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[1.0, 2.0]).unwrap();
        assert!(bn
            .forward_train(&one, &mut y, &mut cache, &mut TrainCtx::new(0))
            .is_err());
    }

    #[test]
    fn batchnorm2d_statistics_over_batch_and_pixels() {
        let mut bn = BatchNorm2d::<f64, Cpu, 3, 2, 4>::build(
            &Cpu,
            &mut crate::rng(0),
            BatchNormConfig {
                momentum: 0.3,
                ..Default::default()
            },
        )
        .unwrap();
        let batch = 5;
        let xv = random_input(batch * 24, &mut crate::rng(1));
        let x = Tensor::<S3<3, 2, 4>, f64>::from_slice(&Cpu, &xv).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        bn.forward_train(&x, &mut y, &mut bn.cache().unwrap(), &mut TrainCtx::new(0))
            .unwrap();
        let y = y.to_vec().unwrap();
        let m = (batch * 8) as f64;
        for c in 0..3 {
            let vals: Vec<usize> = (0..batch)
                .flat_map(|s| (0..8).map(move |p| s * 24 + c * 8 + p))
                .collect();
            let mean = vals.iter().map(|&i| xv[i]).sum::<f64>() / m;
            let var = vals.iter().map(|&i| (xv[i] - mean).powi(2)).sum::<f64>() / m;
            assert!((bn.running_mean.to_vec().unwrap()[c] - 0.3 * mean).abs() < 1e-14);
            assert!(
                (bn.running_var.to_vec().unwrap()[c] - (0.7 + 0.3 * var * m / (m - 1.0))).abs()
                    < 1e-14
            );
            // The output of each channel has mean 0 and variance σ²/(σ² + ε).
            let ym = vals.iter().map(|&i| y[i]).sum::<f64>() / m;
            let yv = vals.iter().map(|&i| (y[i] - ym).powi(2)).sum::<f64>() / m;
            assert!(ym.abs() < 1e-14 && (yv - var / (var + 1e-5)).abs() < 1e-12);
        }
    }

    #[test]
    fn visits_pytorch_names_and_roles() {
        let bn = BatchNorm2d::<f32, Cpu, 3, 4, 4>::build(
            &Cpu,
            &mut crate::rng(0),
            BatchNormConfig::default(),
        )
        .unwrap();
        let mut seen = Vec::new();
        bn.visit(&Path::ROOT.child("bn1"), &mut |p, r| {
            seen.push((p.to_string(), r.dims.to_vec(), r.role))
        });
        let want = [
            ("bn1.weight", vec![3], Role::Param),
            ("bn1.bias", vec![3], Role::Param),
            ("bn1.running_mean", vec![3], Role::Buffer),
            ("bn1.running_var", vec![3], Role::Buffer),
            ("bn1.num_batches_tracked", vec![], Role::Counter),
        ];
        assert_eq!(seen, want.map(|(n, d, r)| (n.to_string(), d, r)));
        assert_eq!(Module::<f32, Cpu>::num_params(&bn), 6);
    }

    #[test]
    fn gradchecks() {
        let mut rng = crate::rng(3);
        let mut b1 =
            BatchNorm1d::<f64, Cpu, 4>::build(&Cpu, &mut rng, BatchNormConfig::default()).unwrap();
        b1.weight
            .copy_from_slice(&random_input(4, &mut rng))
            .unwrap();
        b1.bias.copy_from_slice(&random_input(4, &mut rng)).unwrap();
        assert!(check_layer(&mut b1, 5, 1).unwrap() < 1e-6);
        let mut b2 =
            BatchNorm2d::<f64, Cpu, 3, 2, 3>::build(&Cpu, &mut rng, BatchNormConfig::default())
                .unwrap();
        b2.weight
            .copy_from_slice(&random_input(3, &mut rng))
            .unwrap();
        b2.bias.copy_from_slice(&random_input(3, &mut rng)).unwrap();
        assert!(check_layer(&mut b2, 2, 2).unwrap() < 1e-6);
        let mut b3 =
            BatchNorm2d::<f64, Cpu, 2, 3, 3>::build(&Cpu, &mut rng, BatchNormConfig::default())
                .unwrap();
        assert!(check_layer(&mut b3, 1, 3).unwrap() < 1e-6);
    }
}
