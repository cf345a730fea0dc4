//! Updating only chosen parameters (freezing the others).

use super::{GradRef, Optimizer};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::OptimKernels;
use crate::module::{ParamMut, Path};

/// An optimizer that updates only the parameters whose dotted path
/// (`features.conv1.weight`, `fc3.bias`) is selected; built with
/// [`Optimizer::only`] (update where the predicate holds) or
/// [`Optimizer::freeze`] (update where it does not).
///
/// Frozen parameters keep their values exactly, get no optimizer state, and
/// are hidden from the wrapped optimizer's global statistics (a
/// [`super::ClipGradNorm`] inside an `Only` measures the norm of the trained
/// gradients only, as `clip_grad_norm_` over the parameters that require
/// gradients does in PyTorch). Their gradients are still computed by the
/// backward pass; the course's transfer-learning recipe is
///
/// ```
/// use kiln_core::{optim::{Optimizer, Sgd}, Cpu};
/// // Keep the pretrained features, retrain the classifier head.
/// let opt = Sgd::<f32, Cpu>::new(0.01).momentum(0.9).only(|p| p.starts_with("fc3."));
/// # let _ = opt;
/// ```
///
/// The decision for each parameter is taken the first time it is seen (its
/// path is formatted once) and cached by visiting order, so a step allocates
/// nothing afterwards.
pub struct Only<O, F> {
    inner: O,
    pred: F,
    keep_if: bool,
    decided: Vec<Option<bool>>,
}

impl<O, F: FnMut(&str) -> bool> Only<O, F> {
    /// Wraps `inner`: a parameter is updated when `pred(path) == keep_if`.
    pub fn new(inner: O, pred: F, keep_if: bool) -> Self {
        Only {
            inner,
            pred,
            keep_if,
            decided: Vec::new(),
        }
    }
    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }
    /// The wrapped optimizer, mutably (to change its hyper-parameters).
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }
    /// Whether the parameter at visiting position `index` (path `path`) is trained.
    fn selected(&mut self, index: usize, path: &Path<'_>) -> bool {
        if self.decided.len() <= index {
            self.decided.resize(index + 1, None);
        }
        match self.decided[index] {
            Some(d) => d,
            None => {
                let d = (self.pred)(&path.to_string()) == self.keep_if;
                self.decided[index] = Some(d);
                d
            }
        }
    }
}

impl<E: Elem, D: OptimKernels<E>, O: Optimizer<E, D>, F: FnMut(&str) -> bool> Optimizer<E, D>
    for Only<O, F>
{
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()> {
        if self.selected(index, path) {
            self.inner.update(index, path, p)
        } else {
            Ok(())
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
    fn begin_step(&mut self) -> Result<()> {
        self.inner.begin_step()
    }
    fn observes(&self) -> bool {
        self.inner.observes()
    }
    fn observe(&mut self, index: usize, path: &Path<'_>, p: GradRef<'_, E, D>) -> Result<()> {
        if self.selected(index, path) {
            self.inner.observe(index, path, p)
        } else {
            Ok(())
        }
    }
}
