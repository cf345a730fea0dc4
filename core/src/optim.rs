//! Optimizers, following `torch.optim` step for step, and wrappers that
//! change which gradients they see.
//!
//! State (momentum, moments, accumulators) lives per parameter, keyed by the
//! parameter's position in the network's visiting order, together with that
//! parameter's own step count (as `torch.optim` keeps `state[p]["step"]`). It
//! is allocated the first time the parameter is updated and reused afterwards,
//! so a parameter that is frozen at first and trained later starts its
//! statistics from scratch, as in PyTorch.
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
//! * [`Adagrad`] — `torch.optim.Adagrad` (formula on the type).
//! * [`RmsProp`] — `torch.optim.RMSprop` (formula on the type).
//! * [`Groups`] — parameter groups (`torch.optim` param groups): one
//!   optimizer per group, each with its own learning rate, weight decay and
//!   other hyper-parameters, parameters assigned by a [`Select`] rule (names,
//!   a predicate on path and shape, rank, the rest) checked against the
//!   network when built.
//!
//! Wrappers, built with the [`Optimizer`] methods of the same names:
//!
//! * [`Only`] ([`Optimizer::only`], [`Optimizer::freeze`]) updates only the
//!   parameters whose dotted path satisfies a predicate — the course's
//!   transfer-learning recipe (freeze the features, retrain the head);
//! * [`ClipGradNorm`] ([`Optimizer::clip_grad_norm`]) scales all gradients by
//!   `min(1, max_norm / (‖g‖ + 10⁻⁶))` first, like
//!   `torch.nn.utils.clip_grad_norm_`;
//! * [`crate::regularize::Regularized`] ([`Optimizer::penalty`]) adds the
//!   gradient of an L1/L2/elastic-net penalty.
//!
//! A step runs in up to two passes over the parameters: when some layer of
//! the stack needs a global statistic ([`Optimizer::observes`]), every
//! gradient is first shown to [`Optimizer::observe`]; then each parameter is
//! [`Optimizer::update`]d. Wrappers that change a gradient write the changed
//! copy into a buffer of their own (the network's gradients are never
//! modified) and hand it to the optimizer they wrap.
//!
//! ```
//! use kiln_core::{optim::{Adam, Optimizer}, Cpu};
//! // Retrain only the head, with clipped gradients.
//! let opt = Adam::<f32, Cpu>::new(1e-3).clip_grad_norm(1.0).only(|p| p.starts_with("fc3."));
//! # let _ = opt;
//! ```

mod adagrad;
mod adam;
mod clip;
mod ema;
mod groups;
mod only;
mod rmsprop;
mod sgd;
pub mod state;

pub(crate) use adagrad::cpu_adagrad;
pub use adagrad::Adagrad;
pub use adam::Adam;
pub use clip::{grad_norm, ClipGradNorm};
pub use ema::Ema;
pub use groups::{group_scalars, Groups, GroupsBuilder, Select};
pub use only::Only;
pub(crate) use rmsprop::cpu_rmsprop;
pub use rmsprop::RmsProp;
pub use sgd::Sgd;
pub use state::{OptimState, ParamState};

use crate::device::Backend;
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::{Module, ParamMut, Path};
use crate::regularize::{Penalty, Regularized};

/// Something that updates a module's parameters from their gradients.
///
/// An implementation provides [`Optimizer::update`] (one parameter) and the
/// learning rate; [`Optimizer::step`] drives it over a whole network.
pub trait Optimizer<E: Elem, D: OptimKernels<E>> {
    /// Updates one trainable parameter from `p.grad` (always `Some` here):
    /// the `index`-th parameter with a gradient in the network's visiting
    /// order, at `path`. State is keyed by `index`.
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()>;
    /// The current learning rate.
    fn lr(&self) -> f64;
    /// Changes the learning rate (for schedules); a [`Groups`] optimizer sets
    /// every group's, keeping their ratios.
    fn set_lr(&mut self, lr: f64);

    /// Number of parameter groups (1 unless the optimizer is, or wraps, [`Groups`]).
    fn group_count(&self) -> usize {
        1
    }
    /// Group `g`'s learning rate (`g < group_count()`).
    fn group_lr(&self, g: usize) -> f64 {
        let _ = g;
        self.lr()
    }
    /// Sets group `g`'s learning rate alone (`g < group_count()`).
    fn set_group_lr(&mut self, g: usize, lr: f64) {
        let _ = g;
        self.set_lr(lr)
    }
    /// Group `g`'s initial learning rate over the first group's: a schedule
    /// with base rate η gives group `g` the rate it would give a base of
    /// `group_scale(g)·η` (PyTorch's per-group `initial_lr`).
    fn group_scale(&self, g: usize) -> f64 {
        let _ = g;
        1.0
    }

    /// Called once at the start of every step, before any `observe` or `update`.
    fn begin_step(&mut self) -> Result<()> {
        Ok(())
    }
    /// Whether [`Optimizer::step`] must show every gradient to
    /// [`Optimizer::observe`] before the first update.
    fn observes(&self) -> bool {
        false
    }
    /// Sees parameter `index`'s gradient before any parameter is updated
    /// (only when [`Optimizer::observes`]).
    fn observe(&mut self, index: usize, path: &Path<'_>, p: GradRef<'_, E, D>) -> Result<()> {
        let _ = (index, path, p);
        Ok(())
    }

    /// One update of every parameter of `m` that has a gradient in `grads`.
    fn step<M: Module<E, D>>(&mut self, m: &mut M, grads: &M::Grads) -> Result<()>
    where
        Self: Sized,
    {
        self.begin_step()?;
        if self.observes() {
            for_each_grad(m, grads, |i, path, p| {
                self.observe(i, path, GradRef::of("step", path, &p)?)
            })?;
        }
        for_each_grad(m, grads, |i, path, p| self.update(i, path, p))
    }

    /// The optimizer's state on the host (per-parameter buffers and step
    /// counts, the learning rate; see [`state`]), for checkpoints. `dev` is the
    /// device holding the parameters. Optimizers that do not implement it
    /// return an error.
    fn state(&self, dev: &D) -> Result<OptimState<E>> {
        let _ = dev;
        Err(Error::invalid(
            "Optimizer::state",
            "this optimizer cannot export its state",
        ))
    }
    /// Replaces the optimizer's state with `state` (as [`Optimizer::state`]
    /// returned it), after checking that it fits: the optimizer's kind, every
    /// buffer's name and size. On any problem it returns
    /// [`Error::Checkpoint`] listing all of them and changes nothing.
    fn load_state(&mut self, dev: &D, state: &OptimState<E>) -> Result<()> {
        let _ = (dev, state);
        Err(Error::invalid(
            "Optimizer::load_state",
            "this optimizer cannot import a state",
        ))
    }

    /// Updates only the parameters whose dotted path (`fc3.weight`) satisfies
    /// `pred`; the others keep their values and get no optimizer state.
    fn only<F: FnMut(&str) -> bool>(self, pred: F) -> Only<Self, F>
    where
        Self: Sized,
    {
        Only::new(self, pred, true)
    }
    /// Freezes the parameters whose dotted path satisfies `pred` (the
    /// complement of [`Optimizer::only`]).
    fn freeze<F: FnMut(&str) -> bool>(self, pred: F) -> Only<Self, F>
    where
        Self: Sized,
    {
        Only::new(self, pred, false)
    }
    /// Clips the global gradient norm to `max_norm` before each update (see [`ClipGradNorm`]).
    fn clip_grad_norm(self, max_norm: f64) -> ClipGradNorm<E, D, Self>
    where
        Self: Sized,
    {
        ClipGradNorm::new(self, max_norm)
    }
    /// Adds the gradient of `penalty` to every updated parameter's gradient
    /// (see [`Regularized`]).
    fn penalty(self, penalty: Penalty) -> Regularized<E, D, Self>
    where
        Self: Sized,
    {
        Regularized::new(self, penalty)
    }
}

/// A boxed optimizer is an optimizer, so a run can choose one at run time:
/// `let opt: Box<dyn Optimizer<f32, Cpu>> = if adam { Box::new(Adam::new(1e-3)) } else { … }`.
impl<E: Elem, D: OptimKernels<E>, O: Optimizer<E, D> + ?Sized> Optimizer<E, D> for Box<O> {
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()> {
        (**self).update(index, path, p)
    }
    fn lr(&self) -> f64 {
        (**self).lr()
    }
    fn set_lr(&mut self, lr: f64) {
        (**self).set_lr(lr)
    }
    fn group_count(&self) -> usize {
        (**self).group_count()
    }
    fn group_lr(&self, g: usize) -> f64 {
        (**self).group_lr(g)
    }
    fn set_group_lr(&mut self, g: usize, lr: f64) {
        (**self).set_group_lr(g, lr)
    }
    fn group_scale(&self, g: usize) -> f64 {
        (**self).group_scale(g)
    }
    fn begin_step(&mut self) -> Result<()> {
        (**self).begin_step()
    }
    fn observes(&self) -> bool {
        (**self).observes()
    }
    fn observe(&mut self, index: usize, path: &Path<'_>, p: GradRef<'_, E, D>) -> Result<()> {
        (**self).observe(index, path, p)
    }
    fn state(&self, dev: &D) -> Result<OptimState<E>> {
        (**self).state(dev)
    }
    fn load_state(&mut self, dev: &D, state: &OptimState<E>) -> Result<()> {
        (**self).load_state(dev, state)
    }
}

/// Fails with [`Error::InvalidArgument`] naming `opt`, the hyper-parameter
/// and its value unless `v` is finite and in `[0, hi)` (`hi = ∞`: `v ≥ 0`).
/// Optimizers call it from [`Optimizer::begin_step`], so a bad learning rate
/// (`Adam::new(-1.0)`, a NaN a schedule produced) fails the first step before
/// any parameter changes; the constructors stay infallible.
pub(crate) fn check_hyper(opt: &'static str, checks: &[(&str, f64, f64)]) -> Result<()> {
    for &(name, v, hi) in checks {
        if !(v.is_finite() && v >= 0.0 && v < hi) {
            let domain = if hi.is_infinite() {
                "a finite number ≥ 0".to_string()
            } else {
                format!("in [0, {hi})")
            };
            return Err(Error::invalid(
                opt,
                format!("{name} must be {domain}, got {v}"),
            ));
        }
    }
    Ok(())
}

/// Calls `f(index, path, param)` for every parameter of `m` with a gradient,
/// in visiting order, stopping at the first error.
pub(crate) fn for_each_grad<E: Elem, D: Backend<E>, M: Module<E, D>>(
    m: &mut M,
    grads: &M::Grads,
    mut f: impl FnMut(usize, &Path<'_>, ParamMut<'_, E, D>) -> Result<()>,
) -> Result<()> {
    let mut res = Ok(());
    let mut i = 0;
    m.visit_grads(grads, &Path::ROOT, &mut |path, p| {
        if res.is_err() || p.grad.is_none() {
            return;
        }
        res = f(i, path, p);
        i += 1;
    });
    res
}

/// A read-only view of one parameter and its gradient, for [`Optimizer::observe`].
pub struct GradRef<'a, E: Elem, D: Backend<E>> {
    /// PyTorch shape of the parameter.
    pub dims: &'static [usize],
    /// Number of elements.
    pub numel: usize,
    /// The values.
    pub value: &'a D::Buf<E>,
    /// The gradient.
    pub grad: &'a D::Buf<E>,
    /// The device holding both.
    pub dev: &'a D,
}

impl<E: Elem, D: Backend<E>> Clone for GradRef<'_, E, D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E: Elem, D: Backend<E>> Copy for GradRef<'_, E, D> {}

impl<'a, E: Elem, D: Backend<E>> GradRef<'a, E, D> {
    /// Views a parameter that has a gradient (an error naming `op` otherwise).
    pub fn of(op: &'static str, path: &Path<'_>, p: &'a ParamMut<'_, E, D>) -> Result<Self> {
        Ok(GradRef {
            dims: p.dims,
            numel: p.numel,
            value: &*p.value,
            grad: grad_of(op, path, p)?,
            dev: p.dev,
        })
    }
}

/// The gradient of a parameter handed to `update` (`Some` by contract).
pub(crate) fn grad_of<'a, E: Elem, D: Backend<E>>(
    op: &'static str,
    path: &Path<'_>,
    p: &ParamMut<'a, E, D>,
) -> Result<&'a D::Buf<E>> {
    p.grad.ok_or_else(|| {
        Error::invalid(
            op,
            format!("kiln internal error: parameter `{path}` was updated without a gradient"),
        )
    })
}

/// Parameter `index`'s buffer of `n` values in a wrapper's per-parameter
/// scratch space, allocated on first use (for changed copies of gradients).
pub(crate) fn scratch<'a, E: Elem, D: Backend<E>>(
    bufs: &'a mut Vec<Option<D::Buf<E>>>,
    index: usize,
    n: usize,
    dev: &D,
) -> Result<&'a mut D::Buf<E>> {
    if bufs.len() <= index {
        bufs.resize_with(index + 1, || None);
    }
    let s = match &mut bufs[index] {
        Some(s) => s,
        slot => slot.insert(dev.zeros(n)?),
    };
    if dev.len(s) != n {
        dev.resize(s, n)?;
    }
    Ok(s)
}

/// One parameter's optimizer state: its buffers and its own step count.
pub(crate) struct Slot<E: Elem, D: Backend<E>> {
    pub(crate) bufs: Vec<D::Buf<E>>,
    pub(crate) numel: usize,
    pub(crate) steps: u64,
}

/// Per-parameter state, indexed by visiting order, allocated on first use.
pub(crate) struct Slots<E: Elem, D: Backend<E>> {
    slots: Vec<Option<Slot<E, D>>>,
}

impl<E: Elem, D: Backend<E>> Slots<E, D> {
    pub(crate) fn new() -> Self {
        Slots { slots: Vec::new() }
    }
    /// Parameter `index`'s slot, created by `init(dev, numel)` on first use;
    /// an error if the parameter's size differs from the one the slot was made for.
    pub(crate) fn get(
        &mut self,
        op: &'static str,
        index: usize,
        path: &Path<'_>,
        p: &ParamMut<'_, E, D>,
        init: impl FnOnce(&D, usize) -> Result<Vec<D::Buf<E>>>,
    ) -> Result<&mut Slot<E, D>> {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        let slot = &mut self.slots[index];
        if slot.is_none() {
            *slot = Some(Slot {
                bufs: init(p.dev, p.numel)?,
                numel: p.numel,
                steps: 0,
            });
        }
        let s = slot
            .as_mut()
            .ok_or_else(|| Error::invalid(op, "kiln internal error: slot vanished"))?;
        if s.numel != p.numel {
            return Err(Error::invalid(
                op,
                format!(
                    "parameter `{path}` ({} values) does not match the optimizer state ({} values); one optimizer serves one network",
                    p.numel, s.numel
                ),
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::module::{ParamRef, Role};
    use crate::regularize::Penalty;
    use crate::shape::S1;
    use crate::tensor::Tensor;
    use crate::Cpu;

    /// Parameters `a` (1 value) and `b` (2 values), visited in that order.
    pub(crate) struct Net {
        pub(crate) a: Tensor<S1<1>, f64>,
        pub(crate) b: Tensor<S1<2>, f64>,
    }
    pub(crate) struct NetGrads {
        pub(crate) a: Tensor<S1<1>, f64>,
        pub(crate) b: Tensor<S1<2>, f64>,
    }
    impl Module<f64, Cpu> for Net {
        type Grads = NetGrads;
        fn grads(&self) -> Result<NetGrads> {
            Ok(NetGrads {
                a: Tensor::zeros(&Cpu, 1)?,
                b: Tensor::zeros(&Cpu, 1)?,
            })
        }
        fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, f64, Cpu>)) {
            f(&path.child("a"), ParamRef::of(&self.a, Role::Param));
            f(&path.child("b"), ParamRef::of(&self.b, Role::Param));
        }
        fn visit_grads(
            &mut self,
            g: &NetGrads,
            path: &Path<'_>,
            f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>),
        ) {
            f(&path.child("a"), ParamMut::of(&mut self.a, Some(&g.a)));
            f(&path.child("b"), ParamMut::of(&mut self.b, Some(&g.b)));
        }
        fn visit_mut(
            &mut self,
            path: &Path<'_>,
            f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>, Role),
        ) {
            f(
                &path.child("a"),
                ParamMut::of(&mut self.a, None),
                Role::Param,
            );
            f(
                &path.child("b"),
                ParamMut::of(&mut self.b, None),
                Role::Param,
            );
        }
    }
    impl Net {
        pub(crate) fn new(v: &[f64; 3]) -> Self {
            Net {
                a: Tensor::from_slice(&Cpu, &v[..1]).unwrap(),
                b: Tensor::from_slice(&Cpu, &v[1..]).unwrap(),
            }
        }
        pub(crate) fn values(&self) -> Vec<f64> {
            let mut v = self.a.to_vec().unwrap();
            v.extend(self.b.to_vec().unwrap());
            v
        }
    }

    /// The loss `L = Σθ²/2`, whose gradient is `θ`.
    pub(crate) struct Quad;

    /// `steps` steps of `opt` on [`Quad`] from `theta0`; the values after each step.
    pub(crate) fn run<O: Optimizer<f64, Cpu>>(
        mut opt: O,
        _: Quad,
        theta0: &[f64; 3],
        steps: usize,
    ) -> Vec<Vec<f64>> {
        let mut m = Net::new(theta0);
        let mut g = m.grads().unwrap();
        (0..steps)
            .map(|_| {
                g.a.assign(&m.a).unwrap();
                g.b.assign(&m.b).unwrap();
                opt.step(&mut m, &g).unwrap();
                m.values()
            })
            .collect()
    }

    /// `L = Σθ²/2` from θ = (1, 2, 3) with SGD η = 0.5: each step halves θ.
    #[test]
    fn sgd_and_adam_by_hand() {
        let t = run(Sgd::new(0.5), Quad, &[1.0, 2.0, 3.0], 2);
        assert_eq!(t, [[0.5, 1.0, 1.5], [0.25, 0.5, 0.75]]);
        // Adam's first step moves every coordinate by η·g/(|g| + ε) ≈ η = 0.1.
        let t = run(Adam::new(0.1).eps(0.0), Quad, &[1.0, 2.0, -3.0], 1);
        assert!(rel(&t[0], &[0.9, 1.9, -2.9]) < 1e-15, "{t:?}");
    }

    fn rel(a: &[f64], b: &[f64]) -> f64 {
        crate::testing::rel_err(a, b)
    }

    #[test]
    fn only_and_freeze_leave_the_others_untouched() {
        // Only `b` trains: a stays 1, b halves.
        let t = run(Sgd::new(0.5).only(|p| p == "b"), Quad, &[1.0, 2.0, 4.0], 1);
        assert_eq!(t[0], [1.0, 1.0, 2.0]);
        // Freezing `b` is the complement.
        let t = run(
            Sgd::new(0.5).freeze(|p| p.starts_with('b')),
            Quad,
            &[1.0, 2.0, 4.0],
            2,
        );
        assert_eq!(t[1], [0.25, 2.0, 4.0]);
        // With momentum (state), the trained parameter follows the unwrapped trajectory.
        let a = run(
            Sgd::new(0.1).momentum(0.9).only(|p| p == "a"),
            Quad,
            &[1.0, 2.0, 4.0],
            5,
        );
        let full = run(Sgd::new(0.1).momentum(0.9), Quad, &[1.0, 2.0, 4.0], 5);
        for (x, y) in a.iter().zip(&full) {
            assert_eq!((x[0], x[1], x[2]), (y[0], 2.0, 4.0));
        }
    }

    #[test]
    fn clipping_by_hand() {
        // θ = (0, 3, 4): ‖g‖ = 5; max_norm 1 → c = 1/(5 + 1e-6); SGD η = 1: θ ← θ − c·θ.
        let mut opt = Sgd::new(1.0).clip_grad_norm(1.0);
        let mut m = Net::new(&[0.0, 3.0, 4.0]);
        let mut g = m.grads().unwrap();
        g.a.assign(&m.a).unwrap();
        g.b.assign(&m.b).unwrap();
        assert!((grad_norm(&mut m, &g).unwrap() - 5.0).abs() < 1e-15);
        opt.step(&mut m, &g).unwrap();
        assert_eq!(opt.last_norm(), Some(5.0));
        let c = 1.0 / (5.0 + 1e-6);
        assert!(rel(&m.values(), &[0.0, 3.0 - 3.0 * c, 4.0 - 4.0 * c]) < 1e-15);
        // The network's gradients are not modified.
        assert_eq!(g.b.to_vec().unwrap(), [3.0, 4.0]);
        // Below the limit nothing changes: max_norm 10 → plain SGD.
        let t = run(
            Sgd::new(0.5).clip_grad_norm(10.0),
            Quad,
            &[0.0, 3.0, 4.0],
            1,
        );
        assert_eq!(t[0], [0.0, 1.5, 2.0]);
        // Inside `only`, the frozen parameter's gradient is left out of the norm:
        // only a (= 3) counts → ‖g‖ = 3, c = 1/(3 + 1e-6).
        let t = run(
            Sgd::new(1.0).clip_grad_norm(1.0).only(|p| p == "a"),
            Quad,
            &[3.0, 4.0, 0.0],
            1,
        );
        assert!(
            rel(&t[0], &[3.0 - 3.0 / (3.0 + 1e-6), 4.0, 0.0]) < 1e-15,
            "{t:?}"
        );
        // Two clips cannot be nested; a negative limit is an error.
        let mut m = Net::new(&[1.0; 3]);
        let g = m.grads().unwrap();
        assert!(Sgd::new(1.0)
            .clip_grad_norm(1.0)
            .clip_grad_norm(1.0)
            .step(&mut m, &g)
            .is_err());
        assert!(Sgd::new(1.0).clip_grad_norm(-1.0).step(&mut m, &g).is_err());
    }

    #[test]
    fn penalties_by_hand() {
        // θ = (1, −2, 0): Σ|θ| = 3, Σθ² = 5.
        let m = Net::new(&[1.0, -2.0, 0.0]);
        assert_eq!(Penalty::l1(0.5).value(&m).unwrap(), 1.5);
        assert_eq!(Penalty::l2(0.5).value(&m).unwrap(), 2.5);
        // Elastic net α|W|² + β|W| with α = 0.1, β = 0.2: 0.5 + 0.6 = 1.1.
        assert!((Penalty::elastic_net(0.1, 0.2).value(&m).unwrap() - 1.1).abs() < 1e-15);
        assert_eq!(Penalty::l1(1.0).only(|p| p == "b").value(&m).unwrap(), 2.0);
        // Gradient on Quad from θ = (1, −2, 0), SGD η = 0.1, L1 λ = 0.5:
        // g = θ + 0.5·sign(θ) = (1.5, −2.5, 0) → θ = (0.85, −1.75, 0).
        let t = run(
            Sgd::new(0.1).penalty(Penalty::l1(0.5)),
            Quad,
            &[1.0, -2.0, 0.0],
            1,
        );
        assert!(rel(&t[0], &[0.85, -1.75, 0.0]) < 1e-15, "{t:?}");
        // An L2 penalty λ is SGD's weight decay 2λ, exactly.
        let p = run(
            Sgd::new(0.1).momentum(0.9).penalty(Penalty::l2(0.05)),
            Quad,
            &[1.0, -2.0, 3.0],
            6,
        );
        let w = run(
            Sgd::new(0.1).momentum(0.9).weight_decay(0.1),
            Quad,
            &[1.0, -2.0, 3.0],
            6,
        );
        assert_eq!(p, w);
        // Penalised gradients are what a clip inside sees: θ = (3, 0, 0), L2 λ = 0.5 →
        // g = θ + θ = (6, 0, 0), ‖g‖ = 6, c = 1/(6 + 1e-6), θ = 3 − 6c.
        let t = run(
            Sgd::new(1.0).clip_grad_norm(1.0).penalty(Penalty::l2(0.5)),
            Quad,
            &[3.0, 0.0, 0.0],
            1,
        );
        assert!(
            rel(&t[0], &[3.0 - 6.0 / (6.0 + 1e-6), 0.0, 0.0]) < 1e-15,
            "{t:?}"
        );
    }

    #[test]
    fn boxed_optimizers_step() {
        let opts: Vec<Box<dyn Optimizer<f64, Cpu>>> = vec![
            Box::new(Sgd::new(0.5)),
            Box::new(Sgd::new(0.5).only(|p| p == "a")),
        ];
        let mut out = Vec::new();
        for o in opts {
            out.push(run(o, Quad, &[2.0, 2.0, 2.0], 1).remove(0));
        }
        assert_eq!(out, [[1.0, 1.0, 1.0], [1.0, 2.0, 2.0]]);
    }
}
