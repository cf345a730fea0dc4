//! Adam and AdamW, `torch.optim.Adam` / `torch.optim.AdamW` (formula in [`super`]).

use super::state::{take_scalar, Layout};
use super::{grad_of, OptimState, Optimizer, Slots};
use crate::device::{AdamArgs, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::{ParamMut, Path};
use crate::Cpu;

/// Adam with bias correction; AdamW with [`Adam::decoupled`].
pub struct Adam<E: Elem = f32, D: Backend<E> = Cpu> {
    /// Learning rate η.
    pub lr: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Weight decay λ (L2 in Adam, decoupled in AdamW).
    pub weight_decay: f64,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
    state: Slots<E, D>,
    steps: u64,
}

impl<E: Elem, D: Backend<E>> Adam<E, D> {
    /// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8).
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            state: Slots::new(),
            steps: 0,
        }
    }
    /// AdamW (`torch.optim.AdamW`, default weight decay 0.01).
    pub fn adamw(lr: f64) -> Self {
        let mut a = Self::new(lr);
        a.decoupled = true;
        a.weight_decay = 0.01;
        a
    }
    /// Sets β₁ and β₂.
    pub fn betas(mut self, b1: f64, b2: f64) -> Self {
        self.beta1 = b1;
        self.beta2 = b2;
        self
    }
    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Sets the weight decay.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }
    fn kind(&self) -> &'static str {
        if self.decoupled {
            "AdamW"
        } else {
            "Adam"
        }
    }
    fn layout(&self) -> Layout<'static> {
        Layout {
            kind: self.kind(),
            buffers: &[("exp_avg", true), ("exp_avg_sq", true)],
        }
    }
}

impl<E: Elem, D: OptimKernels<E>> Optimizer<E, D> for Adam<E, D> {
    fn begin_step(&mut self) -> Result<()> {
        super::check_hyper(
            self.kind(),
            &[
                ("the learning rate", self.lr, f64::INFINITY),
                ("beta1", self.beta1, 1.0),
                ("beta2", self.beta2, 1.0),
                ("eps", self.eps, f64::INFINITY),
                ("weight_decay", self.weight_decay, f64::INFINITY),
            ],
        )?;
        self.steps += 1;
        Ok(())
    }
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()> {
        let g = grad_of("Adam", path, &p)?;
        let s = self.state.get("Adam", index, path, &p, |dev, n| {
            Ok(vec![dev.zeros(n)?, dev.zeros(n)?])
        })?;
        s.steps += 1;
        let args = AdamArgs {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
            step: s.steps,
        };
        let [m, v] = &mut s.bufs[..] else {
            return Err(Error::invalid(
                "Adam",
                "kiln internal error: Adam keeps two buffers per parameter",
            ));
        };
        p.dev.adam_step(&args, p.value, g, m, v, p.numel)
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self, dev: &D) -> Result<OptimState<E>> {
        let mut s = OptimState::new(self.kind());
        s.scalars.insert("lr".into(), self.lr);
        s.scalars.insert("steps".into(), self.steps as f64);
        s.params = self.state.export(dev, &self.layout())?;
        Ok(s)
    }
    fn load_state(&mut self, dev: &D, state: &OptimState<E>) -> Result<()> {
        self.state = Slots::import(dev, state, &self.layout())?;
        take_scalar(state, "lr", &mut self.lr);
        if let Some(t) = state.scalar("steps") {
            self.steps = t as u64;
        }
        Ok(())
    }
}
