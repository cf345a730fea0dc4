//! Gradient clipping by global norm, `torch.nn.utils.clip_grad_norm_`.

use super::{for_each_grad, grad_of, scratch, GradRef, Optimizer};
use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::{Module, ParamMut, Path};

/// The global L2 norm of all gradients, `√(Σ_params Σ_i g_i²)` (what
/// `clip_grad_norm_` returns), summed in `f64` in visiting order.
pub fn grad_norm<E: Elem, D: Backend<E>, M: Module<E, D>>(
    m: &mut M,
    grads: &M::Grads,
) -> Result<f64> {
    let mut ss = 0.0;
    for_each_grad(m, grads, |_, path, p| {
        ss += p.dev.sum_sq(grad_of("grad_norm", path, &p)?, p.numel)?;
        Ok(())
    })?;
    Ok(ss.sqrt())
}

/// An optimizer whose gradients are first clipped by their global norm,
/// like calling `torch.nn.utils.clip_grad_norm_(params, max_norm)` between
/// `backward()` and `step()`:
///
/// ```text
/// ‖g‖ = √(Σ_params Σ_i g_i²)
/// c   = min(1, max_norm / (‖g‖ + 10⁻⁶))
/// every gradient g ← c·g, then the wrapped optimizer's update
/// ```
///
/// Built with [`Optimizer::clip_grad_norm`]. The scaled gradients go into
/// buffers owned by the wrapper (one per parameter, allocated on the first
/// clipped step), so the network's gradients are left as the backward pass
/// wrote them; when `c = 1` the original gradients are used directly.
/// [`ClipGradNorm::last_norm`] is the norm before clipping, `clip_grad_norm_`'s
/// return value.
///
/// One difference from PyTorch: a NaN or infinite norm is an
/// [`Error::NonFinite`] (PyTorch's `error_if_nonfinite=True`) instead of
/// silently turning every parameter into NaN.
///
/// The norm is taken over the gradients the wrapper sees: wrap it in
/// [`Optimizer::only`] (not the other way round) to leave frozen parameters
/// out, and put [`Optimizer::penalty`] outside it to clip the penalised
/// gradient (PyTorch's order when the penalty is part of the loss).
pub struct ClipGradNorm<E: Elem, D: Backend<E>, O> {
    inner: O,
    /// The largest global norm let through.
    pub max_norm: f64,
    sum_sq: f64,
    coef: Option<f64>,
    last_norm: Option<f64>,
    scratch: Vec<Option<D::Buf<E>>>,
}

impl<E: Elem, D: Backend<E>, O> ClipGradNorm<E, D, O> {
    /// Wraps `inner`, clipping to `max_norm`.
    pub fn new(inner: O, max_norm: f64) -> Self {
        ClipGradNorm {
            inner,
            max_norm,
            sum_sq: 0.0,
            coef: None,
            last_norm: None,
            scratch: Vec::new(),
        }
    }
    /// The global gradient norm of the last step, before clipping.
    pub fn last_norm(&self) -> Option<f64> {
        self.last_norm
    }
    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }
    /// The wrapped optimizer, mutably.
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }
    /// The clipping factor of this step, computed once all gradients were observed.
    fn coef(&mut self) -> Result<f64> {
        if let Some(c) = self.coef {
            return Ok(c);
        }
        let norm = self.sum_sq.sqrt();
        if !norm.is_finite() {
            return Err(Error::NonFinite {
                what: "gradient norm in clip_grad_norm".into(),
                value: norm,
            });
        }
        self.last_norm = Some(norm);
        let c = (self.max_norm / (norm + 1e-6)).min(1.0);
        self.coef = Some(c);
        Ok(c)
    }
}

impl<E: Elem, D: OptimKernels<E>, O: Optimizer<E, D>> Optimizer<E, D> for ClipGradNorm<E, D, O> {
    fn begin_step(&mut self) -> Result<()> {
        if self.max_norm.is_nan() || self.max_norm < 0.0 {
            return Err(Error::invalid(
                "clip_grad_norm",
                format!("max_norm must be ≥ 0, got {}", self.max_norm),
            ));
        }
        if self.inner.observes() {
            return Err(Error::invalid(
                "clip_grad_norm",
                "the wrapped optimizer also needs every gradient before its first update (a second clip?); nest at most one",
            ));
        }
        self.sum_sq = 0.0;
        self.coef = None;
        self.inner.begin_step()
    }
    fn observes(&self) -> bool {
        true
    }
    fn observe(&mut self, _index: usize, _path: &Path<'_>, p: GradRef<'_, E, D>) -> Result<()> {
        self.sum_sq += p.dev.sum_sq(p.grad, p.numel)?;
        Ok(())
    }
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()> {
        let c = self.coef()?;
        if c >= 1.0 {
            return self.inner.update(index, path, p);
        }
        let g = grad_of("clip_grad_norm", path, &p)?;
        let s = scratch(&mut self.scratch, index, p.numel, p.dev)?;
        p.dev.axpy(E::of(c), g, s, p.numel, Acc::Set)?;
        self.inner.update(
            index,
            path,
            ParamMut {
                grad: Some(&*s),
                ..p
            },
        )
    }
    fn lr(&self) -> f64 {
        self.inner.lr()
    }
    fn set_lr(&mut self, lr: f64) {
        self.inner.set_lr(lr)
    }
    fn group_count(&self) -> usize {
        self.inner.group_count()
    }
    fn group_lr(&self, g: usize) -> f64 {
        self.inner.group_lr(g)
    }
    fn set_group_lr(&mut self, g: usize, lr: f64) {
        self.inner.set_group_lr(g, lr)
    }
    fn group_scale(&self, g: usize) -> f64 {
        self.inner.group_scale(g)
    }
    fn state(&self, dev: &D) -> Result<crate::optim::OptimState<E>> {
        self.inner.state(dev)
    }
    fn load_state(&mut self, dev: &D, state: &crate::optim::OptimState<E>) -> Result<()> {
        self.inner.load_state(dev, state)
    }
}
