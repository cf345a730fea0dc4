//! Learning-rate schedules, following `torch.optim.lr_scheduler`.
//!
//! A [`Schedule`] maps an epoch (or step) count `t = 0, 1, 2, …` — PyTorch's
//! `last_epoch` — to a learning rate, in closed form. `t = 0` is the rate
//! before the first `scheduler.step()`, so a PyTorch loop
//!
//! ```text
//! for epoch in range(n): train(...); scheduler.step()
//! ```
//!
//! trains epoch `t` with `lr_at(t)`. [`LrScheduler`] keeps `t` and writes the
//! rate into any [`Optimizer`] with `set_lr`, like PyTorch's scheduler
//! objects. Each schedule carries its base learning rate η (PyTorch reads it
//! from the optimizer as `initial_lr`).
//!
//! | type | PyTorch | `lr_at(t)` |
//! |---|---|---|
//! | [`StepLr`] | `StepLR(step_size, gamma)` | `η·γ^⌊t/step_size⌋` |
//! | [`ExponentialLr`] | `ExponentialLR(gamma)` | `η·γ^t` |
//! | [`CosineAnnealingLr`] | `CosineAnnealingLR(T_max, eta_min)` | `η_min + (η − η_min)·(1 + cos(π·t/T_max))/2` |
//! | [`CosineAnnealingWarmRestarts`] | `CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)` | the same with `t` → `T_cur`, `T_max` → `T_i` (below) |
//! | [`ConstantLr`] | `ConstantLR(factor, total_iters)` | `η·factor` for `t < total_iters`, then `η` |
//! | [`LinearLr`] | `LinearLR(start_factor, end_factor, total_iters)` | `η·(s + (e − s)·min(t, total_iters)/total_iters)` |
//! | [`Sequential`] | `SequentialLR(schedulers, milestones)` | schedule `k` at `t − milestone_k` (below) |
//! | [`WarmupCosine`] | nanoGPT's `get_lr(it)` (`train.py`) | `η·(t+1)/(w+1)` for `t < w`, then cosine to `η_min` at `T`, then `η_min` |
//!
//! PyTorch computes most of these recursively (each rate from the previous
//! one); the closed forms agree with its recorded `get_last_lr()` sequences
//! to rounding (tested to 1e-12). Cosine annealing without restarts keeps
//! following the cosine past `T_max` (the rate rises again), as PyTorch's does.
//!
//! Warm restarts (SGDR): the first period lasts `T_0` epochs, each next one
//! `T_mult` times longer; `T_cur` counts epochs since the last restart and
//! `T_i` is the current period's length, so at each restart the rate jumps
//! back to η. A warm-up followed by another schedule is a [`Sequential`]:
//!
//! ```
//! use kiln_core::schedule::{ConstantLr, CosineAnnealingLr, Schedule, Sequential};
//! // 5 epochs at 0.1·η, then cosine annealing over 45 epochs.
//! let s = Sequential::warmup(ConstantLr::new(0.1, 0.1, 5)?, 5, CosineAnnealingLr::new(0.1, 45, 0.0)?);
//! assert!((s.lr_at(0) - 0.01).abs() < 1e-15);
//! assert_eq!(s.lr_at(5), 0.1);
//! # Ok::<(), kiln_core::Error>(())
//! ```
//!
//! The course lists step, exponential and cosine schedules (with restarts,
//! "popping the model out of a local minimum"); it gives no formulas, so
//! PyTorch's are the definition here.

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::optim::Optimizer;
use std::f64::consts::PI;

/// A learning rate as a function of the epoch (or step) count.
pub trait Schedule {
    /// The learning rate for epoch `t` (`t = 0` before the first scheduler step).
    fn lr_at(&self, t: u64) -> f64;
    /// The rate for epoch `t` of the same schedule with its base rate η
    /// replaced by `scale·η`: what a PyTorch scheduler gives a parameter
    /// group whose `initial_lr` is `scale·η`. The default, `scale·lr_at(t)`,
    /// is right for every schedule that multiplies η by a factor; schedules
    /// with an absolute floor (`eta_min`) override it.
    fn lr_scaled(&self, scale: f64, t: u64) -> f64 {
        scale * self.lr_at(t)
    }
    /// Sets `opt`'s learning rate to `lr_at(t)`; with parameter groups
    /// ([`crate::optim::Groups`]), group `g`'s to `lr_scaled(opt.group_scale(g), t)`.
    fn apply<E: Elem, D: crate::kernels::OptimKernels<E>, O: Optimizer<E, D>>(
        &self,
        opt: &mut O,
        t: u64,
    ) where
        Self: Sized,
    {
        apply_to(self, opt, t)
    }
}

/// [`Schedule::apply`], for unsized schedules and optimizers too.
pub(crate) fn apply_to<
    S: Schedule + ?Sized,
    E: Elem,
    D: crate::kernels::OptimKernels<E>,
    O: Optimizer<E, D> + ?Sized,
>(
    s: &S,
    opt: &mut O,
    t: u64,
) {
    let n = opt.group_count();
    if n == 1 {
        opt.set_lr(s.lr_at(t));
    } else {
        for g in 0..n {
            let lr = s.lr_scaled(opt.group_scale(g), t);
            opt.set_group_lr(g, lr);
        }
    }
}

impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn lr_at(&self, t: u64) -> f64 {
        (**self).lr_at(t)
    }
    fn lr_scaled(&self, scale: f64, t: u64) -> f64 {
        (**self).lr_scaled(scale, t)
    }
}

/// Fails unless every rate or factor is finite and ≥ 0 (a negative or NaN
/// rate would train backwards or poison every parameter).
fn rates(op: &'static str, vals: &[(&str, f64)]) -> Result<()> {
    crate::optim::check_hyper(
        op,
        &vals
            .iter()
            .map(|&(n, v)| (n, v, f64::INFINITY))
            .collect::<Vec<_>>(),
    )
}

fn positive(op: &'static str, name: &str, v: u64) -> Result<()> {
    if v == 0 {
        Err(Error::invalid(op, format!("{name} must be positive")))
    } else {
        Ok(())
    }
}

/// `γ^k` for an integer `k` (exact repeated squaring, no `i32` overflow).
fn powu(gamma: f64, k: u64) -> f64 {
    match i32::try_from(k) {
        Ok(k) => gamma.powi(k),
        Err(_) => gamma.powf(k as f64),
    }
}

/// Multiplies the rate by `gamma` every `step_size` epochs (`StepLR`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLr {
    /// Base rate η.
    pub base_lr: f64,
    /// Epochs between decays.
    pub step_size: u64,
    /// Decay factor γ (PyTorch's default 0.1).
    pub gamma: f64,
}

impl StepLr {
    /// `η·γ^⌊t/step_size⌋`; `step_size` must be positive.
    pub fn new(base_lr: f64, step_size: u64, gamma: f64) -> Result<Self> {
        positive("StepLr", "step_size", step_size)?;
        rates("StepLr", &[("base_lr", base_lr), ("gamma", gamma)])?;
        Ok(StepLr {
            base_lr,
            step_size,
            gamma,
        })
    }
}

impl Schedule for StepLr {
    fn lr_at(&self, t: u64) -> f64 {
        self.base_lr * powu(self.gamma, t / self.step_size)
    }
}

/// Multiplies the rate by `gamma` every epoch (`ExponentialLR`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialLr {
    /// Base rate η.
    pub base_lr: f64,
    /// Decay factor γ per epoch.
    pub gamma: f64,
}

impl ExponentialLr {
    /// `η·γ^t`.
    pub fn new(base_lr: f64, gamma: f64) -> Self {
        ExponentialLr { base_lr, gamma }
    }
}

impl Schedule for ExponentialLr {
    fn lr_at(&self, t: u64) -> f64 {
        self.base_lr * powu(self.gamma, t)
    }
}

/// `η_min + (η − η_min)·(1 + cos(π·t/T))/2`.
fn cosine(base: f64, eta_min: f64, t: f64, period: f64) -> f64 {
    eta_min + (base - eta_min) * (1.0 + (PI * t / period).cos()) / 2.0
}

/// Half a cosine from η down to `eta_min` over `t_max` epochs (`CosineAnnealingLR`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineAnnealingLr {
    /// Base rate η.
    pub base_lr: f64,
    /// Epochs from η to `eta_min`.
    pub t_max: u64,
    /// The lowest rate.
    pub eta_min: f64,
}

impl CosineAnnealingLr {
    /// Cosine annealing; `t_max` must be positive.
    pub fn new(base_lr: f64, t_max: u64, eta_min: f64) -> Result<Self> {
        positive("CosineAnnealingLr", "t_max", t_max)?;
        rates(
            "CosineAnnealingLr",
            &[("base_lr", base_lr), ("eta_min", eta_min)],
        )?;
        Ok(CosineAnnealingLr {
            base_lr,
            t_max,
            eta_min,
        })
    }
}

impl Schedule for CosineAnnealingLr {
    fn lr_at(&self, t: u64) -> f64 {
        self.lr_scaled(1.0, t)
    }
    fn lr_scaled(&self, scale: f64, t: u64) -> f64 {
        cosine(
            scale * self.base_lr,
            self.eta_min,
            t as f64,
            self.t_max as f64,
        )
    }
}

/// Cosine annealing restarted every period, periods growing by `t_mult`
/// (`CosineAnnealingWarmRestarts`, SGDR).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineAnnealingWarmRestarts {
    /// Base rate η (the rate right after each restart).
    pub base_lr: f64,
    /// Length of the first period.
    pub t_0: u64,
    /// Growth factor of the periods (1 = all equal).
    pub t_mult: u64,
    /// The lowest rate.
    pub eta_min: f64,
}

impl CosineAnnealingWarmRestarts {
    /// SGDR; `t_0` and `t_mult` must be positive.
    pub fn new(base_lr: f64, t_0: u64, t_mult: u64, eta_min: f64) -> Result<Self> {
        positive("CosineAnnealingWarmRestarts", "t_0", t_0)?;
        positive("CosineAnnealingWarmRestarts", "t_mult", t_mult)?;
        rates(
            "CosineAnnealingWarmRestarts",
            &[("base_lr", base_lr), ("eta_min", eta_min)],
        )?;
        Ok(CosineAnnealingWarmRestarts {
            base_lr,
            t_0,
            t_mult,
            eta_min,
        })
    }
    /// `(T_cur, T_i)` at epoch `t`: epochs since the last restart and the
    /// current period's length (integer arithmetic, so restarts fall exactly
    /// where PyTorch's step-by-step counter puts them).
    pub fn position(&self, t: u64) -> (u64, u64) {
        if self.t_mult == 1 {
            return (t % self.t_0, self.t_0);
        }
        let (mut start, mut len) = (0u64, self.t_0);
        while t - start >= len {
            start += len;
            len = len.saturating_mul(self.t_mult);
        }
        (t - start, len)
    }
}

impl Schedule for CosineAnnealingWarmRestarts {
    fn lr_at(&self, t: u64) -> f64 {
        self.lr_scaled(1.0, t)
    }
    fn lr_scaled(&self, scale: f64, t: u64) -> f64 {
        let (cur, len) = self.position(t);
        cosine(scale * self.base_lr, self.eta_min, cur as f64, len as f64)
    }
}

/// A constant warm-up: `η·factor` for the first `total_iters` epochs, then
/// `η` (`ConstantLR`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConstantLr {
    /// Base rate η.
    pub base_lr: f64,
    /// Factor during the warm-up, in `[0, 1]` (PyTorch's default 1/3).
    pub factor: f64,
    /// Warm-up length in epochs (PyTorch's default 5).
    pub total_iters: u64,
}

impl ConstantLr {
    /// A constant warm-up; `factor` must lie in `[0, 1]`.
    pub fn new(base_lr: f64, factor: f64, total_iters: u64) -> Result<Self> {
        rates("ConstantLr", &[("base_lr", base_lr)])?;
        if !(0.0..=1.0).contains(&factor) {
            return Err(Error::invalid(
                "ConstantLr",
                format!("factor must lie in [0, 1], got {factor}"),
            ));
        }
        Ok(ConstantLr {
            base_lr,
            factor,
            total_iters,
        })
    }
}

impl Schedule for ConstantLr {
    fn lr_at(&self, t: u64) -> f64 {
        if t < self.total_iters {
            self.base_lr * self.factor
        } else {
            self.base_lr
        }
    }
}

/// A linear ramp of the factor from `start_factor` to `end_factor` over
/// `total_iters` epochs, then constant (`LinearLR`, the usual linear warm-up).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearLr {
    /// Base rate η.
    pub base_lr: f64,
    /// Factor at `t = 0`, in `(0, 1]`.
    pub start_factor: f64,
    /// Factor from `t = total_iters` on, in `[0, 1]`.
    pub end_factor: f64,
    /// Ramp length in epochs.
    pub total_iters: u64,
}

impl LinearLr {
    /// A linear ramp; factors as PyTorch checks them, `total_iters` positive.
    pub fn new(base_lr: f64, start_factor: f64, end_factor: f64, total_iters: u64) -> Result<Self> {
        let start_ok = start_factor > 0.0 && start_factor <= 1.0;
        if !start_ok || !(0.0..=1.0).contains(&end_factor) {
            return Err(Error::invalid(
                "LinearLr",
                format!("start_factor must lie in (0, 1] and end_factor in [0, 1], got {start_factor} and {end_factor}"),
            ));
        }
        positive("LinearLr", "total_iters", total_iters)?;
        rates("LinearLr", &[("base_lr", base_lr)])?;
        Ok(LinearLr {
            base_lr,
            start_factor,
            end_factor,
            total_iters,
        })
    }
}

impl Schedule for LinearLr {
    fn lr_at(&self, t: u64) -> f64 {
        let f = t.min(self.total_iters) as f64 / self.total_iters as f64;
        self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * f)
    }
}

/// Schedules one after another (`SequentialLR`): schedule `k` runs from
/// milestone `k − 1` (0 for the first) and sees epochs counted from its start,
/// `lr_at(t) = schedules[k].lr_at(t − milestones[k − 1])` with `k` the number
/// of milestones `≤ t`.
pub struct Sequential {
    schedules: Vec<Box<dyn Schedule + Send + Sync>>,
    milestones: Vec<u64>,
}

impl Sequential {
    /// `schedules.len()` must be `milestones.len() + 1`, milestones strictly increasing.
    pub fn new(
        schedules: Vec<Box<dyn Schedule + Send + Sync>>,
        milestones: Vec<u64>,
    ) -> Result<Self> {
        if schedules.len() != milestones.len() + 1 {
            return Err(Error::invalid(
                "Sequential",
                format!(
                    "{} schedules need {} milestones, got {}",
                    schedules.len(),
                    schedules.len().saturating_sub(1),
                    milestones.len()
                ),
            ));
        }
        if milestones.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid(
                "Sequential",
                format!("milestones must increase strictly, got {milestones:?}"),
            ));
        }
        Ok(Sequential {
            schedules,
            milestones,
        })
    }
    /// `warmup` for the first `epochs` epochs, then `main` from its own epoch 0.
    pub fn warmup(
        warmup: impl Schedule + Send + Sync + 'static,
        epochs: u64,
        main: impl Schedule + Send + Sync + 'static,
    ) -> Self {
        Sequential {
            schedules: vec![Box::new(warmup), Box::new(main)],
            milestones: vec![epochs],
        }
    }
}

impl Schedule for Sequential {
    fn lr_at(&self, t: u64) -> f64 {
        let k = self.milestones.partition_point(|&m| m <= t);
        let start = if k == 0 { 0 } else { self.milestones[k - 1] };
        self.schedules[k].lr_at(t - start)
    }
    fn lr_scaled(&self, scale: f64, t: u64) -> f64 {
        let k = self.milestones.partition_point(|&m| m <= t);
        let start = if k == 0 { 0 } else { self.milestones[k - 1] };
        self.schedules[k].lr_scaled(scale, t - start)
    }
}

/// nanoGPT's learning rate (`get_lr(it)` in its `train.py`), per iteration:
/// a linear warm-up over `warmup_iters`, a cosine decay to `min_lr` at
/// `lr_decay_iters`, then `min_lr`:
///
/// ```text
/// t < w:        η·(t + 1)/(w + 1)
/// t > T:        η_min
/// otherwise:    η_min + (1 + cos(π·(t − w)/(T − w)))/2 · (η − η_min)
/// ```
///
/// (`w = warmup_iters`, `T = lr_decay_iters`). Unlike [`LinearLr`] the
/// warm-up never starts at 0 and reaches `η·w/(w + 1)` at its last step; `t`
/// is nanoGPT's `iter_num`, the number of optimizer steps taken before the
/// one the rate is for. With parameter groups every group's rate is scaled,
/// `η_min` included ([`Schedule::lr_scaled`]'s default); nanoGPT writes the
/// same rate into every group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    /// Peak rate η (nanoGPT's `learning_rate`).
    pub base_lr: f64,
    /// Warm-up iterations `w`.
    pub warmup_iters: u64,
    /// The iteration `T` at which the decay reaches `min_lr`.
    pub lr_decay_iters: u64,
    /// The final rate η_min.
    pub min_lr: f64,
}

impl WarmupCosine {
    /// nanoGPT's schedule; `lr_decay_iters` must exceed `warmup_iters`.
    pub fn new(base_lr: f64, warmup_iters: u64, lr_decay_iters: u64, min_lr: f64) -> Result<Self> {
        rates("WarmupCosine", &[("base_lr", base_lr), ("min_lr", min_lr)])?;
        if lr_decay_iters <= warmup_iters {
            return Err(Error::invalid(
                "WarmupCosine",
                format!(
                    "lr_decay_iters ({lr_decay_iters}) must exceed warmup_iters ({warmup_iters})"
                ),
            ));
        }
        Ok(WarmupCosine {
            base_lr,
            warmup_iters,
            lr_decay_iters,
            min_lr,
        })
    }
}

impl Schedule for WarmupCosine {
    fn lr_at(&self, t: u64) -> f64 {
        let (w, d) = (self.warmup_iters, self.lr_decay_iters);
        if t < w {
            return self.base_lr * (t + 1) as f64 / (w + 1) as f64;
        }
        if t > d {
            return self.min_lr;
        }
        let ratio = (t - w) as f64 / (d - w) as f64;
        let coeff = 0.5 * (1.0 + (PI * ratio).cos());
        self.min_lr + coeff * (self.base_lr - self.min_lr)
    }
}

/// Drives a [`Schedule`] over an optimizer, like a PyTorch scheduler object:
/// [`LrScheduler::new`] sets the rate of epoch 0 (of every parameter group,
/// as [`Schedule::apply`]), and each
/// [`LrScheduler::step`] (called after an epoch's optimizer steps) moves to
/// the next epoch and sets its rate.
pub struct LrScheduler<S> {
    schedule: S,
    epoch: u64,
}

impl<S: Schedule> LrScheduler<S> {
    /// Starts at epoch 0, setting `opt`'s rate to `schedule.lr_at(0)`.
    pub fn new<E: Elem, D: crate::kernels::OptimKernels<E>, O: Optimizer<E, D>>(
        schedule: S,
        opt: &mut O,
    ) -> Self {
        apply_to(&schedule, opt, 0);
        LrScheduler { schedule, epoch: 0 }
    }
    /// Advances one epoch and sets its rate.
    pub fn step<E: Elem, D: crate::kernels::OptimKernels<E>, O: Optimizer<E, D>>(
        &mut self,
        opt: &mut O,
    ) {
        self.set_epoch(opt, self.epoch + 1)
    }
    /// Jumps to `epoch` (resuming a run) and sets its rate.
    pub fn set_epoch<E: Elem, D: crate::kernels::OptimKernels<E>, O: Optimizer<E, D>>(
        &mut self,
        opt: &mut O,
        epoch: u64,
    ) {
        self.epoch = epoch;
        apply_to(&self.schedule, opt, epoch);
    }
    /// The current epoch count (PyTorch's `last_epoch`).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// The rate of the current epoch (PyTorch's `get_last_lr()`).
    pub fn last_lr(&self) -> f64 {
        self.schedule.lr_at(self.epoch)
    }
    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Sgd;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-15 * (1.0 + b.abs())
    }

    #[test]
    fn step_and_exponential_by_hand() {
        // η = 1, step 3, γ = 0.5: epochs 0–2 → 1, 3–5 → 0.5, 6 → 0.25.
        let s = StepLr::new(1.0, 3, 0.5).unwrap();
        let got: Vec<f64> = (0..7).map(|t| s.lr_at(t)).collect();
        assert_eq!(got, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
        // η = 2, γ = 0.5: 2, 1, 0.5, 0.25.
        let e = ExponentialLr::new(2.0, 0.5);
        assert_eq!(
            (0..4).map(|t| e.lr_at(t)).collect::<Vec<_>>(),
            [2.0, 1.0, 0.5, 0.25]
        );
        assert!(StepLr::new(1.0, 0, 0.5).is_err());
    }

    #[test]
    fn cosine_by_hand() {
        // η = 1, η_min = 0, T = 4: (1 + cos(πt/4))/2 = 1, (2+√2)/4, 1/2, (2−√2)/4, 0, then up again.
        let c = CosineAnnealingLr::new(1.0, 4, 0.0).unwrap();
        let r2 = 2f64.sqrt();
        let want = [
            1.0,
            (2.0 + r2) / 4.0,
            0.5,
            (2.0 - r2) / 4.0,
            0.0,
            (2.0 - r2) / 4.0,
        ];
        for (t, w) in want.iter().enumerate() {
            assert!((c.lr_at(t as u64) - w).abs() < 1e-15, "t={t}");
        }
        // With η_min = 0.1: half way is (1 + 0.1)/2 = 0.55.
        assert!(close(
            CosineAnnealingLr::new(1.0, 4, 0.1).unwrap().lr_at(2),
            0.55
        ));
    }

    #[test]
    fn warm_restarts_by_hand() {
        // T_0 = 2, T_mult = 2: periods [0,2), [2,6), [6,14): T_cur/T_i at t = 0..7 are
        // 0/2, 1/2, 0/4, 1/4, 2/4, 3/4, 0/8, 1/8.
        let w = CosineAnnealingWarmRestarts::new(1.0, 2, 2, 0.0).unwrap();
        let pos: Vec<(u64, u64)> = (0..8).map(|t| w.position(t)).collect();
        assert_eq!(
            pos,
            [
                (0, 2),
                (1, 2),
                (0, 4),
                (1, 4),
                (2, 4),
                (3, 4),
                (0, 8),
                (1, 8)
            ]
        );
        // lr at t = 1: (1 + cos(π/2))/2 = 0.5; restart at t = 2 → 1; t = 4: cos(π/2) → 0.5.
        assert!(close(w.lr_at(1), 0.5) && w.lr_at(2) == 1.0 && close(w.lr_at(4), 0.5));
        // T_mult = 1: period 3 repeats.
        let w = CosineAnnealingWarmRestarts::new(1.0, 3, 1, 0.0).unwrap();
        assert_eq!(w.position(7), (1, 3));
    }

    #[test]
    fn warmups_and_sequential_by_hand() {
        // ConstantLR(η = 0.1, factor 0.5, 2 iters): 0.05, 0.05, 0.1, 0.1.
        let c = ConstantLr::new(0.1, 0.5, 2).unwrap();
        assert_eq!(
            (0..4).map(|t| c.lr_at(t)).collect::<Vec<_>>(),
            [0.05, 0.05, 0.1, 0.1]
        );
        // LinearLR(η = 1, 0.25 → 1 over 3): 0.25, 0.5, 0.75, 1, 1.
        let l = LinearLr::new(1.0, 0.25, 1.0, 3).unwrap();
        assert_eq!(
            (0..5).map(|t| l.lr_at(t)).collect::<Vec<_>>(),
            [0.25, 0.5, 0.75, 1.0, 1.0]
        );
        // Linear warm-up for 3 epochs, then StepLR(η = 1, 2, 0.5) from its epoch 0:
        // 0.25, 0.5, 0.75 | 1, 1, 0.5, 0.5, 0.25.
        let s = Sequential::warmup(l, 3, StepLr::new(1.0, 2, 0.5).unwrap());
        let got: Vec<f64> = (0..8).map(|t| s.lr_at(t)).collect();
        assert_eq!(got, [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.5, 0.25]);
        assert!(Sequential::new(vec![Box::new(c)], vec![3]).is_err());
        assert!(ConstantLr::new(1.0, 1.5, 2).is_err());
    }

    /// nanoGPT's `get_lr` by hand: η = 1e-3, w = 100, T = 2000, η_min = 1e-4
    /// (issue 11's `char_gpt` settings).
    #[test]
    fn nanogpt_warmup_cosine_by_hand() {
        let s = WarmupCosine::new(1e-3, 100, 2000, 1e-4).unwrap();
        // Warm-up: 1e-3·(it + 1)/101.
        assert!(close(s.lr_at(0), 1e-3 / 101.0));
        assert!(close(s.lr_at(49), 1e-3 * 50.0 / 101.0));
        assert!(close(s.lr_at(99), 1e-3 * 100.0 / 101.0));
        // Decay starts at the peak: ratio 0, coeff 1.
        assert!(close(s.lr_at(100), 1e-3));
        // Half way (it = 1050): coeff 1/2 → (1e-3 + 1e-4)/2 = 5.5e-4.
        assert!(close(s.lr_at(1050), 5.5e-4));
        // A quarter (it = 575): coeff (1 + cos(π/4))/2 = (2 + √2)/4.
        let q = (2.0 + 2f64.sqrt()) / 4.0;
        assert!(close(s.lr_at(575), 1e-4 + q * 9e-4));
        // The end, and after it.
        assert!(close(s.lr_at(2000), 1e-4));
        assert_eq!(s.lr_at(2001), 1e-4);
        assert_eq!(s.lr_at(10_000), 1e-4);
        assert!(WarmupCosine::new(1e-3, 100, 100, 0.0).is_err());
        // No warm-up: it = 0 is already the peak.
        assert_eq!(WarmupCosine::new(1.0, 0, 10, 0.0).unwrap().lr_at(0), 1.0);
    }

    #[test]
    fn scheduler_drives_an_optimizer() {
        let mut opt = Sgd::<f64>::new(123.0);
        let mut s = LrScheduler::new(StepLr::new(1.0, 1, 0.5).unwrap(), &mut opt);
        assert_eq!(Optimizer::<f64, crate::Cpu>::lr(&opt), 1.0);
        s.step(&mut opt);
        s.step(&mut opt);
        assert_eq!((s.epoch(), s.last_lr(), opt.lr), (2, 0.25, 0.25));
        s.set_epoch(&mut opt, 0);
        assert_eq!(opt.lr, 1.0);
    }
}
