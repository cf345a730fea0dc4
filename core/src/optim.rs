//! Optimizers, following `torch.optim` step for step.
//!
//! State (momentum, Adam's moments) is allocated on the first step, one buffer
//! per parameter in the network's visiting order, and reused afterwards.
//!
//! * [`Sgd`] — `torch.optim.SGD`: with `g ← ∇ + λθ`,
//!   `b ← g` on the first step, then `b ← μb + (1−τ)g`; the update is
//!   `θ ← θ − η·b`, or with Nesterov `θ ← θ − η·(g + μb)`. The course writes
//!   momentum as `v ← μv − η∇; θ ← θ + v`; with a constant learning rate both
//!   give the same trajectory (`v = −ηb`). The course's Nesterov form
//!   (look-ahead gradient) is the same method rewritten in the look-ahead
//!   variable; PyTorch's (and kiln's) is the one that needs only `∇f(θ)`.
//! * [`Adam`] — `torch.optim.Adam` (and AdamW with `decoupled`):
//!   `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//!   `θ ← θ − η·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)`. The bias correction of the
//!   second moment uses β₂ (the course notes print β₁ there, a typo).

use crate::device::{AdamArgs, Backend, SgdArgs};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::module::{Module, Path};
use crate::Cpu;

/// Something that updates a module's parameters from its gradients.
pub trait Optimizer<E: Elem, D: Backend<E>> {
    /// One update of every parameter of `m` from `grads`.
    fn step<M: Module<E, D>>(&mut self, m: &mut M, grads: &M::Grads) -> Result<()>;
    /// The current learning rate.
    fn lr(&self) -> f64;
    /// Changes the learning rate (for schedules).
    fn set_lr(&mut self, lr: f64);
}

/// Per-parameter state buffers, allocated on the first step.
struct State<E: Elem, D: Backend<E>> {
    bufs: Vec<D::Buf<E>>,
    lens: Vec<usize>,
}

impl<E: Elem, D: Backend<E>> State<E, D> {
    fn new() -> Self {
        State {
            bufs: Vec::new(),
            lens: Vec::new(),
        }
    }
}

/// Checks that parameter `i` has the length the state was made for.
fn check_state(op: &'static str, path: &Path<'_>, lens: &[usize], i: usize, n: usize) -> Result<()> {
    match lens.get(i) {
        Some(&l) if l == n => Ok(()),
        _ => Err(Error::invalid(
            op,
            format!("parameter `{path}` ({n} values) does not match the optimizer state; one optimizer serves one network"),
        )),
    }
}

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
    state: State<E, D>,
    steps: u64,
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
            state: State::new(),
            steps: 0,
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
}

impl<E: Elem, D: Backend<E>> Optimizer<E, D> for Sgd<E, D> {
    fn step<M: Module<E, D>>(&mut self, m: &mut M, grads: &M::Grads) -> Result<()> {
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::invalid("Sgd", "Nesterov momentum requires a momentum and zero dampening"));
        }
        let first = self.steps == 0;
        let args = SgdArgs {
            lr: self.lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            first,
        };
        let mut res = Ok(());
        let mut i = 0;
        let st = &mut self.state;
        m.visit_grads(grads, &Path::ROOT, &mut |path, p| {
            if res.is_err() {
                return;
            }
            let Some(g) = p.grad else { return };
            res = (|| {
                if first {
                    // The momentum buffer is written before it is read on the first step.
                    let b = if args.momentum != 0.0 { p.numel } else { 0 };
                    st.bufs.push(p.dev.zeros(b)?);
                    st.lens.push(p.numel);
                }
                check_state("Sgd", path, &st.lens, i, p.numel)?;
                p.dev.sgd_step(&args, p.value, g, &mut st.bufs[i], p.numel)
            })();
            i += 1;
        });
        res?;
        self.steps += 1;
        Ok(())
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}

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
    m: State<E, D>,
    v: State<E, D>,
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
            m: State::new(),
            v: State::new(),
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
}

impl<E: Elem, D: Backend<E>> Optimizer<E, D> for Adam<E, D> {
    fn step<M: Module<E, D>>(&mut self, model: &mut M, grads: &M::Grads) -> Result<()> {
        let first = self.steps == 0;
        let args = AdamArgs {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
            step: self.steps + 1,
        };
        let (ms, vs) = (&mut self.m, &mut self.v);
        let mut res = Ok(());
        let mut i = 0;
        model.visit_grads(grads, &Path::ROOT, &mut |path, p| {
            if res.is_err() {
                return;
            }
            let Some(g) = p.grad else { return };
            res = (|| {
                if first {
                    ms.bufs.push(p.dev.zeros(p.numel)?);
                    vs.bufs.push(p.dev.zeros(p.numel)?);
                    ms.lens.push(p.numel);
                }
                check_state("Adam", path, &ms.lens, i, p.numel)?;
                p.dev.adam_step(&args, p.value, g, &mut ms.bufs[i], &mut vs.bufs[i], p.numel)
            })();
            i += 1;
        });
        res?;
        self.steps += 1;
        Ok(())
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}
