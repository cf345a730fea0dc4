//! Stochastic gradient descent, `torch.optim.SGD` (formula in [`super`]).

use super::state::{take_scalar, Layout};
use super::{grad_of, OptimState, Optimizer, Slots};
use crate::device::{Backend, SgdArgs};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::{OptimKernels, SparseRowKernels};
use crate::layers::SparseRows;
use crate::module::{ParamMut, Path};
use crate::shape::S2;
use crate::tensor::Tensor;
use crate::Cpu;

/// Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.
pub struct Sgd<E: Elem = f32, D: Backend<E> = Cpu> {
    /// Learning rate η.
    pub lr: f64,
    /// Momentum μ (0 = plain SGD).
    pub momentum: f64,
    /// Dampening τ.
    pub dampening: f64,
    /// L2 weight decay λ.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    state: Slots<E, D>,
}

impl<E: Elem, D: Backend<E>> Sgd<E, D> {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            state: Slots::new(),
        }
    }
    /// Sets the momentum μ.
    pub fn momentum(mut self, mu: f64) -> Self {
        self.momentum = mu;
        self
    }
    /// Nesterov momentum μ.
    pub fn nesterov(mut self, mu: f64) -> Self {
        self.momentum = mu;
        self.nesterov = true;
        self
    }
    /// Sets the weight decay λ.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    fn layout(&self) -> Layout<'static> {
        Layout {
            kind: "SGD",
            buffers: if self.momentum != 0.0 {
                &[("momentum_buffer", true)]
            } else {
                &[("momentum_buffer", false)]
            },
        }
    }
}

impl<E: Elem, D: SparseRowKernels<E>> Sgd<E, D> {
    /// One plain-SGD step on the rows a sparse gradient records
    /// (`crate::layers::embedding_sparse`): `W[r, :] ← W[r, :] − η · g_r` for
    /// each recorded row `r`, every other row left untouched (not even
    /// read). For `Sgd::new(η)` this is [`Optimizer::step`] on the dense
    /// gradient, bit for bit, at a cost proportional to the recorded rows.
    /// Momentum, dampening, Nesterov and weight decay change rows whose
    /// gradient is zero, so they have no sparse form: an error, as in
    /// PyTorch. Keeps no state (the step count of [`Optimizer::step`] is
    /// not advanced).
    pub fn step_sparse<const V: usize, const DIM: usize>(
        &self,
        weight: &mut Tensor<S2<V, DIM>, E, D>,
        grad: &SparseRows<E, D, V, DIM>,
    ) -> Result<()> {
        super::check_hyper(
            "Sgd::step_sparse",
            &[("the learning rate", self.lr, f64::INFINITY)],
        )?;
        if self.momentum != 0.0 || self.weight_decay != 0.0 || self.nesterov {
            return Err(Error::invalid(
                "Sgd::step_sparse",
                "a sparse step is plain SGD: momentum, Nesterov and weight decay change rows without a gradient, so they have no sparse form",
            ));
        }
        let (rows, values, k) = grad.raw();
        let dev = weight.device().clone();
        dev.sgd_rows(self.lr, weight.buf_mut(), rows, values, k, V, DIM)
    }
}

impl<E: Elem, D: OptimKernels<E>> Optimizer<E, D> for Sgd<E, D> {
    fn begin_step(&mut self) -> Result<()> {
        super::check_hyper(
            "Sgd",
            &[
                ("the learning rate", self.lr, f64::INFINITY),
                ("momentum", self.momentum, f64::INFINITY),
                ("dampening", self.dampening, f64::INFINITY),
                ("weight_decay", self.weight_decay, f64::INFINITY),
            ],
        )?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::invalid(
                "Sgd",
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(())
    }
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()> {
        let g = grad_of("Sgd", path, &p)?;
        let momentum = self.momentum;
        // The momentum buffer is written before it is read on the first step.
        let s = self.state.get("Sgd", index, path, &p, |dev, n| {
            Ok(vec![dev.zeros(if momentum != 0.0 { n } else { 0 })?])
        })?;
        let args = SgdArgs {
            lr: self.lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            first: s.steps == 0,
        };
        p.dev.sgd_step(&args, p.value, g, &mut s.bufs[0], p.numel)?;
        s.steps += 1;
        Ok(())
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self, dev: &D) -> Result<OptimState<E>> {
        let mut s = OptimState::new("SGD");
        s.scalars.insert("lr".into(), self.lr);
        s.params = self.state.export(dev, &self.layout())?;
        Ok(s)
    }
    fn load_state(&mut self, dev: &D, state: &OptimState<E>) -> Result<()> {
        self.state = Slots::import(dev, state, &self.layout())?;
        take_scalar(state, "lr", &mut self.lr);
        Ok(())
    }
}
