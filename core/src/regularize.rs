//! Regularisation as loss terms with gradients: L1, L2 and elastic net over
//! a module's parameters.
//!
//! The penalty of a [`Penalty`] with coefficients `l1`, `l2` is
//!
//! ```text
//! R(θ) = l1·Σ|θ_i| + l2·Σθ_i²        ∂R/∂θ_i = l1·sign(θ_i) + 2·l2·θ_i
//! ```
//!
//! summed over every trainable parameter (or those a path predicate selects,
//! [`Penalty::only`]); `sign(0) = 0`, the subgradient PyTorch's autograd uses
//! for `abs`. The course's forms are `L1: λ|W|`, `L2: λ|W|²` and elastic net
//! `α|W|² + β|W|` ([`Penalty::elastic_net`]`(α, β)`), with `|W|²` the sum of
//! squares (no ½). Hence an L2 penalty `l2` equals SGD's `weight_decay = 2·l2`
//! (the weight decay of [`crate::optim`]'s optimizers is the other way to get
//! it, and AdamW's decoupled decay is not a penalty at all).
//!
//! [`Penalty::value`] gives `R(θ)` to add to the data loss when it is logged;
//! the gradient is added by wrapping the optimizer ([`Regularized`], built
//! with [`Optimizer::penalty`]), because the networks' gradient buffers are
//! written by the backward pass and read by the optimizer:
//!
//! ```
//! use kiln_core::{optim::{Optimizer, Sgd}, Cpu};
//! use kiln_core::regularize::Penalty;
//! // Elastic net on the weights only (not the biases).
//! let pen = Penalty::elastic_net(1e-4, 1e-5).only(|p| p.ends_with("weight"));
//! let opt = Sgd::<f32, Cpu>::new(0.1).momentum(0.9).penalty(pen);
//! # let _ = opt;
//! ```

use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::{Module, ParamMut, Path, Role};
use crate::optim::{grad_of, scratch, GradRef, Optimizer};

/// An L1/L2/elastic-net penalty (formulas in the [module docs](self)).
#[derive(Clone, Copy, Debug)]
pub struct Penalty {
    /// Coefficient of `Σ|θ|`.
    pub l1: f64,
    /// Coefficient of `Σθ²`.
    pub l2: f64,
    /// Which parameters (by dotted path) are penalised; all when `None`.
    pub filter: Option<fn(&str) -> bool>,
}

impl Penalty {
    /// `λ·Σ|θ|`.
    pub fn l1(lambda: f64) -> Self {
        Penalty {
            l1: lambda,
            l2: 0.0,
            filter: None,
        }
    }
    /// `λ·Σθ²`.
    pub fn l2(lambda: f64) -> Self {
        Penalty {
            l1: 0.0,
            l2: lambda,
            filter: None,
        }
    }
    /// The course's elastic net `α·Σθ² + β·Σ|θ|`.
    pub fn elastic_net(alpha: f64, beta: f64) -> Self {
        Penalty {
            l1: beta,
            l2: alpha,
            filter: None,
        }
    }
    /// Penalises only the parameters whose dotted path satisfies `pred`.
    pub fn only(mut self, pred: fn(&str) -> bool) -> Self {
        self.filter = Some(pred);
        self
    }
    fn applies(&self, path: &Path<'_>) -> bool {
        self.filter.is_none_or(|f| f(&path.to_string()))
    }
    fn check(&self) -> Result<()> {
        if self.l1.is_finite() && self.l2.is_finite() {
            Ok(())
        } else {
            Err(Error::invalid(
                "Penalty",
                format!(
                    "coefficients must be finite, got l1 = {}, l2 = {}",
                    self.l1, self.l2
                ),
            ))
        }
    }
    /// `R(θ)` over `m`'s trainable parameters (buffers such as running
    /// statistics are never penalised), summed in `f64` in visiting order.
    pub fn value<E: Elem, D: Backend<E>, M: Module<E, D>>(&self, m: &M) -> Result<f64> {
        self.check()?;
        let mut total = 0.0;
        let mut res = Ok(());
        m.visit(&Path::ROOT, &mut |path, p| {
            if res.is_err() || p.role != Role::Param || !self.applies(path) {
                return;
            }
            res = (|| {
                if self.l1 != 0.0 {
                    total += self.l1 * p.dev.sum_abs(p.value, p.numel)?;
                }
                if self.l2 != 0.0 {
                    total += self.l2 * p.dev.sum_sq(p.value, p.numel)?;
                }
                Ok(())
            })();
        });
        res.map(|()| total)
    }
    /// `dst (acc)= ∂R/∂θ` for one parameter `theta` of `n` values (ignores [`Penalty::only`]).
    pub fn grad<E: Elem, D: OptimKernels<E>>(
        &self,
        dev: &D,
        theta: &D::Buf<E>,
        dst: &mut D::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        dev.penalty_grad(self.l1, self.l2, theta, dst, n, acc)
    }
}

/// An optimizer that adds `∂R/∂θ` of a [`Penalty`] to each gradient before
/// updating, so that it minimises `loss + R(θ)`; built with
/// [`Optimizer::penalty`]. The sum `∇ + ∂R/∂θ` is written into a buffer
/// owned by the wrapper (one per penalised parameter), leaving the network's
/// gradients untouched. A wrapped [`crate::optim::ClipGradNorm`] sees the
/// penalised gradients, as when the penalty is part of PyTorch's loss.
pub struct Regularized<E: Elem, D: Backend<E>, O> {
    inner: O,
    /// The penalty whose gradient is added.
    pub penalty: Penalty,
    decided: Vec<Option<bool>>,
    scratch: Vec<Option<D::Buf<E>>>,
}

impl<E: Elem, D: OptimKernels<E>, O> Regularized<E, D, O> {
    /// Wraps `inner` with `penalty`.
    pub fn new(inner: O, penalty: Penalty) -> Self {
        Regularized {
            inner,
            penalty,
            decided: Vec::new(),
            scratch: Vec::new(),
        }
    }
    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }
    /// The wrapped optimizer, mutably.
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }
    /// Whether parameter `index` is penalised (decided once per index).
    fn applies(&mut self, index: usize, path: &Path<'_>) -> bool {
        if self.decided.len() <= index {
            self.decided.resize(index + 1, None);
        }
        *self.decided[index].get_or_insert_with(|| self.penalty.applies(path))
    }
    /// Writes `∇ + ∂R/∂θ` into parameter `index`'s own buffer.
    fn penalised(
        &mut self,
        index: usize,
        theta: &D::Buf<E>,
        g: &D::Buf<E>,
        n: usize,
        dev: &D,
    ) -> Result<()> {
        let s = scratch(&mut self.scratch, index, n, dev)?;
        dev.copy(g, s, n)?;
        self.penalty.grad(dev, theta, s, n, Acc::Add)
    }
}

impl<E: Elem, D: OptimKernels<E>, O: Optimizer<E, D>> Optimizer<E, D> for Regularized<E, D, O> {
    fn begin_step(&mut self) -> Result<()> {
        self.penalty.check()?;
        self.inner.begin_step()
    }
    fn observes(&self) -> bool {
        self.inner.observes()
    }
    fn observe(&mut self, index: usize, path: &Path<'_>, p: GradRef<'_, E, D>) -> Result<()> {
        if !self.applies(index, path) {
            return self.inner.observe(index, path, p);
        }
        // θ does not change before this parameter's update in the second
        // pass, so the buffer computed here is reused there.
        self.penalised(index, p.value, p.grad, p.numel, p.dev)?;
        match &self.scratch[index] {
            Some(s) => self.inner.observe(index, path, GradRef { grad: s, ..p }),
            None => Err(Error::invalid(
                "Regularized",
                "kiln internal error: penalised gradient missing",
            )),
        }
    }
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()> {
        if !self.applies(index, path) {
            return self.inner.update(index, path, p);
        }
        if !self.inner.observes() {
            let g = grad_of("Regularized", path, &p)?;
            self.penalised(index, p.value, g, p.numel, p.dev)?;
        }
        match &self.scratch[index] {
            Some(s) => self
                .inner
                .update(index, path, ParamMut { grad: Some(s), ..p }),
            None => Err(Error::invalid(
                "Regularized",
                "kiln internal error: penalised gradient missing",
            )),
        }
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
