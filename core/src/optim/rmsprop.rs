//! RMSprop, `torch.optim.RMSprop`.

use super::state::{take_scalar, Layout};
use super::{grad_of, OptimState, Optimizer, Slots};
use crate::device::{Backend, RmspropArgs};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::{ParamMut, Path};
use crate::Cpu;

const LAYOUT: Layout<'static> = Layout {
    kind: "RMSprop",
    buffers: &[
        ("square_avg", true),
        ("grad_avg", false),
        ("momentum_buffer", false),
    ],
};

/// RMSprop: divide by a moving root mean square of the gradients.
///
/// PyTorch's update, per element:
///
/// ```text
/// g ← ∇ + λθ                                  (weight_decay λ)
/// v ← αv + (1 − α)g²                          (square_avg, from 0)
/// centered: ḡ ← ḡ + (1 − α)(g − ḡ),  d = √(v − ḡ²) + ε
/// otherwise:                          d = √v + ε
/// momentum μ > 0: b ← μb + g/d,  θ ← θ − η·b  (b from 0)
/// otherwise:                      θ ← θ − η·g/d
/// ```
///
/// The course writes `G ← βG + (1 − β)∇²; θ ← θ − η/√(G + ε) · ∇`: its β is
/// PyTorch's `alpha` (default 0.99), and PyTorch adds ε outside the square
/// root (default 1e-8). `centered` (divide by an estimate of the variance
/// instead of the second moment) and `momentum` are PyTorch's extensions,
/// off by default.
pub struct RmsProp<E: Elem = f32, D: Backend<E> = Cpu> {
    /// Learning rate η.
    pub lr: f64,
    /// Smoothing constant α (the course's β).
    pub alpha: f64,
    /// ε, added to the root.
    pub eps: f64,
    /// L2 weight decay λ, added to the gradient.
    pub weight_decay: f64,
    /// Momentum μ (0 = none).
    pub momentum: f64,
    /// Normalise by the centred second moment (an estimate of the variance).
    pub centered: bool,
    state: Slots<E, D>,
}

impl<E: Elem, D: Backend<E>> RmsProp<E, D> {
    /// RMSprop with PyTorch's defaults (α = 0.99, ε = 1e-8, no momentum, not centred).
    pub fn new(lr: f64) -> Self {
        RmsProp {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            state: Slots::new(),
        }
    }
    /// Sets α.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }
    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Sets the weight decay λ.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    /// Sets the momentum μ.
    pub fn momentum(mut self, mu: f64) -> Self {
        self.momentum = mu;
        self
    }
    /// The centred variant.
    pub fn centered(mut self, c: bool) -> Self {
        self.centered = c;
        self
    }
}

impl<E: Elem, D: OptimKernels<E>> Optimizer<E, D> for RmsProp<E, D> {
    fn begin_step(&mut self) -> Result<()> {
        super::check_hyper(
            "RmsProp",
            &[
                ("the learning rate", self.lr, f64::INFINITY),
                ("eps", self.eps, f64::INFINITY),
                ("weight_decay", self.weight_decay, f64::INFINITY),
                ("momentum", self.momentum, f64::INFINITY),
            ],
        )?;
        if self.momentum < 0.0 || !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::invalid(
                "RmsProp",
                format!(
                    "momentum must be ≥ 0 and alpha in [0, 1]; got momentum {} and alpha {}",
                    self.momentum, self.alpha
                ),
            ));
        }
        Ok(())
    }
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()> {
        let g = grad_of("RmsProp", path, &p)?;
        let (centered, momentum) = (self.centered, self.momentum > 0.0);
        let s = self.state.get("RmsProp", index, path, &p, |dev, n| {
            Ok(vec![
                dev.zeros(n)?,
                dev.zeros(if centered { n } else { 0 })?,
                dev.zeros(if momentum { n } else { 0 })?,
            ])
        })?;
        let [sq, ga, buf] = &mut s.bufs[..] else {
            return Err(Error::invalid(
                "RmsProp",
                "kiln internal error: RmsProp keeps three buffers per parameter",
            ));
        };
        // Switching `centered` or `momentum` on after the first step gives the
        // new buffers zeros, as PyTorch does when its state lacks them.
        if centered && p.dev.len(ga) < p.numel {
            p.dev.resize(ga, p.numel)?;
        }
        if momentum && p.dev.len(buf) < p.numel {
            p.dev.resize(buf, p.numel)?;
        }
        s.steps += 1;
        let args = RmspropArgs {
            lr: self.lr,
            alpha: self.alpha,
            eps: self.eps,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            centered: self.centered,
        };
        p.dev.rmsprop_step(&args, p.value, g, sq, ga, buf, p.numel)
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self, dev: &D) -> Result<OptimState<E>> {
        let mut s = OptimState::new("RMSprop");
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

/// The CPU body of [`crate::kernels::OptimKernels::rmsprop_step`] (slices of equal length;
/// `grad_avg` given when centred, `buf` when there is momentum).
pub(crate) fn cpu_rmsprop<E: Elem>(
    a: &RmspropArgs,
    p: &mut [E],
    g: &[E],
    sq: &mut [E],
    mut grad_avg: Option<&mut [E]>,
    mut buf: Option<&mut [E]>,
) {
    let (alpha, eps, wd, lr, mu) = (
        E::of(a.alpha),
        E::of(a.eps),
        E::of(a.weight_decay),
        E::of(a.lr),
        E::of(a.momentum),
    );
    let one_m = E::one() - alpha;
    for i in 0..p.len() {
        let gi = g[i] + wd * p[i];
        sq[i] = sq[i] * alpha + one_m * gi * gi;
        let d = match grad_avg.as_deref_mut() {
            Some(ga) => {
                // torch's lerp(ḡ, g, w = 1 − α), which switches form at w = 0.5.
                ga[i] = if one_m < E::of(0.5) {
                    ga[i] + one_m * (gi - ga[i])
                } else {
                    gi - (gi - ga[i]) * alpha
                };
                (sq[i] - ga[i] * ga[i]).sqrt() + eps
            }
            None => sq[i].sqrt() + eps,
        };
        match buf.as_deref_mut() {
            Some(b) => {
                b[i] = b[i] * mu + gi / d;
                p[i] = p[i] - lr * b[i];
            }
            None => p[i] = p[i] - lr * gi / d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::tests::{run, Quad};

    /// By hand on `L = θ²/2` (∇ = θ) from θ = 1, η = 0.1, α = 0.5, ε = 0:
    /// step 1: v = 0.5·1 = 0.5, θ = 1 − 0.1/√0.5 = 0.8585786438;
    /// step 2: v = 0.25 + 0.5θ², θ ← θ − 0.1·θ/√v.
    #[test]
    fn plain_by_hand() {
        let traj = run(RmsProp::new(0.1).alpha(0.5).eps(0.0), Quad, &[1.0; 3], 2);
        let t1 = 1.0 - 0.1 / 0.5f64.sqrt();
        assert!(
            (traj[0][0] - t1).abs() < 1e-15 && (t1 - 0.8585786438).abs() < 1e-10,
            "{traj:?}"
        );
        let t2 = t1 - 0.1 * t1 / (0.25 + 0.5 * t1 * t1).sqrt();
        assert!((traj[1][0] - t2).abs() < 1e-15, "{traj:?}");
    }

    /// Centred with momentum, one step from θ = 1 (g = 1), α = 0.5, μ = 0.9, ε = 0:
    /// v = 0.5, ḡ = 0.5, d = √(0.5 − 0.25) = 0.5, b = 1/0.5 = 2, θ = 1 − 0.1·2 = 0.8;
    /// step 2 (g = 0.8): v = 0.25 + 0.32 = 0.57, ḡ = 0.5 + 0.5·0.3 = 0.65,
    /// d = √(0.57 − 0.4225) = √0.1475, b = 1.8 + 0.8/d, θ = 0.8 − 0.1·b.
    #[test]
    fn centered_momentum_by_hand() {
        let opt = RmsProp::new(0.1)
            .alpha(0.5)
            .eps(0.0)
            .momentum(0.9)
            .centered(true);
        let traj = run(opt, Quad, &[1.0; 3], 2);
        assert!((traj[0][0] - 0.8).abs() < 1e-15, "{traj:?}");
        let b = 1.8 + 0.8 / 0.1475f64.sqrt();
        assert!((traj[1][0] - (0.8 - 0.1 * b)).abs() < 1e-14, "{traj:?}");
    }
}
