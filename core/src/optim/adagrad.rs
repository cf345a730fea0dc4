//! Adagrad, `torch.optim.Adagrad`.

use super::state::{take_scalar, Layout};
use super::{grad_of, OptimState, Optimizer, Slots};
use crate::device::{AdagradArgs, Backend};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::OptimKernels;
use crate::module::{ParamMut, Path};
use crate::Cpu;
use rayon::prelude::*;

const LAYOUT: Layout<'static> = Layout {
    kind: "Adagrad",
    buffers: &[("sum", true)],
};

/// Adagrad: per-element learning rates from the sum of squared gradients.
///
/// With `t` this parameter's step number (from 1), PyTorch's update is
///
/// ```text
/// g   ← ∇ + λθ                               (weight_decay λ)
/// η_t = η / (1 + (t − 1)·lr_decay)
/// G   ← G + g²                               (G₀ = initial_accumulator_value)
/// θ   ← θ − η_t · g / (√G + ε)
/// ```
///
/// The course writes `θ ← θ − η/√(G + ε) · ∇` with `G₀ = 0`: PyTorch adds ε
/// outside the square root (default 1e-10) and has the extra `lr_decay`,
/// `initial_accumulator_value` and `weight_decay` knobs, all 0 by default.
pub struct Adagrad<E: Elem = f32, D: Backend<E> = Cpu> {
    /// Learning rate η.
    pub lr: f64,
    /// Learning-rate decay per step.
    pub lr_decay: f64,
    /// L2 weight decay λ, added to the gradient.
    pub weight_decay: f64,
    /// Starting value of the accumulator `G`.
    pub initial_accumulator_value: f64,
    /// ε, added to `√G`.
    pub eps: f64,
    state: Slots<E, D>,
}

impl<E: Elem, D: Backend<E>> Adagrad<E, D> {
    /// Adagrad with PyTorch's defaults (no decay, `G₀ = 0`, ε = 1e-10).
    pub fn new(lr: f64) -> Self {
        Adagrad {
            lr,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            state: Slots::new(),
        }
    }
    /// Sets the learning-rate decay.
    pub fn lr_decay(mut self, d: f64) -> Self {
        self.lr_decay = d;
        self
    }
    /// Sets the weight decay λ.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    /// Sets the accumulator's starting value.
    pub fn initial_accumulator_value(mut self, v: f64) -> Self {
        self.initial_accumulator_value = v;
        self
    }
    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
}

impl<E: Elem, D: OptimKernels<E>> Optimizer<E, D> for Adagrad<E, D> {
    fn begin_step(&mut self) -> Result<()> {
        super::check_hyper(
            "Adagrad",
            &[
                ("the learning rate", self.lr, f64::INFINITY),
                ("lr_decay", self.lr_decay, f64::INFINITY),
                ("weight_decay", self.weight_decay, f64::INFINITY),
                (
                    "initial_accumulator_value",
                    self.initial_accumulator_value,
                    f64::INFINITY,
                ),
                ("eps", self.eps, f64::INFINITY),
            ],
        )
    }
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()> {
        let g = grad_of("Adagrad", path, &p)?;
        let g0 = E::of(self.initial_accumulator_value);
        let s = self.state.get("Adagrad", index, path, &p, |dev, n| {
            let mut sum = dev.zeros(n)?;
            dev.fill(&mut sum, n, g0)?;
            Ok(vec![sum])
        })?;
        s.steps += 1;
        let args = AdagradArgs {
            lr: self.lr,
            lr_decay: self.lr_decay,
            weight_decay: self.weight_decay,
            eps: self.eps,
            step: s.steps,
        };
        p.dev
            .adagrad_step(&args, p.value, g, &mut s.bufs[0], p.numel)
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self, dev: &D) -> Result<OptimState<E>> {
        let mut s = OptimState::new("Adagrad");
        s.scalars.insert("lr".into(), self.lr);
        s.params = self.state.export(dev, &LAYOUT)?;
        Ok(s)
    }
    fn load_state(&mut self, dev: &D, state: &OptimState<E>) -> Result<()> {
        self.state = Slots::import(dev, state, &LAYOUT)?;
        take_scalar(state, "lr", &mut self.lr);
        Ok(())
    }
}

/// The CPU body of [`crate::kernels::OptimKernels::adagrad_step`] (slices of equal length).
pub(crate) fn cpu_adagrad<E: Elem>(a: &AdagradArgs, p: &mut [E], g: &[E], sum: &mut [E]) {
    let clr = E::of(a.lr / (1.0 + (a.step as f64 - 1.0) * a.lr_decay));
    let (wd, eps) = (E::of(a.weight_decay), E::of(a.eps));
    const CHUNK: usize = 1 << 13;
    p.par_chunks_mut(CHUNK)
        .zip(sum.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(ci, (pc, sc))| {
            let o = ci * CHUNK;
            for i in 0..pc.len() {
                let gi = g[o + i] + wd * pc[i];
                sc[i] = sc[i] + gi * gi;
                pc[i] = pc[i] - clr * gi / (sc[i].sqrt() + eps);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::tests::{run, Quad};

    /// Two steps by hand on `L = θ²/2` (so `∇ = θ`) from `θ = 2`, η = 0.5,
    /// lr_decay 0.5, G₀ = 1, ε = 0:
    /// step 1: g = 2, η₁ = 0.5, G = 1 + 4 = 5, θ = 2 − 0.5·2/√5 = 1.5527864045;
    /// step 2: g = θ, η₂ = 0.5/1.5 = 1/3, G = 5 + θ², θ ← θ − θ/(3√G).
    #[test]
    fn two_steps_by_hand() {
        let opt = Adagrad::new(0.5)
            .lr_decay(0.5)
            .initial_accumulator_value(1.0)
            .eps(0.0);
        let traj = run(opt, Quad, &[2.0; 3], 2);
        let t1 = 2.0 - 0.5 * 2.0 / 5f64.sqrt();
        assert!((traj[0][0] - t1).abs() < 1e-15, "{traj:?}");
        assert!((t1 - 1.5527864045).abs() < 1e-10);
        let t2 = t1 - t1 / (3.0 * (5.0 + t1 * t1).sqrt());
        assert!((traj[1][0] - t2).abs() < 1e-15, "{traj:?}");
    }

    /// Weight decay enters the gradient: `g = ∇ + λθ`. With ∇ = θ = 1, λ = 1:
    /// g = 2, G = 4, θ = 1 − 0.1·2/(2 + 0) = 0.9.
    #[test]
    fn weight_decay_adds_to_the_gradient() {
        let traj = run(
            Adagrad::new(0.1).weight_decay(1.0).eps(0.0),
            Quad,
            &[1.0; 3],
            1,
        );
        assert!((traj[0][0] - 0.9).abs() < 1e-15, "{traj:?}");
    }
}
