//! Inverted dropout (PyTorch's `nn.Dropout(p)`): in training each element is
//! kept with probability `1 − p` and scaled by `1/(1 − p)`, so evaluation is
//! the identity (the course's "scale by 1/p at train time" with its `p` the
//! keep probability).
//!
//! * training forward: `y = x · m / (1 − p)`, `m_i ~ Bernoulli(1 − p)` (a
//!   product, as PyTorch: a dropped NaN stays NaN rather than becoming 0);
//! * backward: `∂L/∂x = ∂L/∂y · m / (1 − p)` (the same mask);
//! * evaluation forward: `y = x`.
//!
//! The mask is a counter-based hash, not a stored array: each training call
//! draws one `u64` seed from the context's seeded generator, and element `i`
//! is kept when the `i`-th output of SplitMix64 started at that seed is at
//! least `⌊p·2⁶⁴⌋` ([`crate::device::dropout_keep`]). Every device computes the
//! same mask for the same seed without moving it, runs are reproducible from
//! the tape's seed, and the only thing cached for backward is the seed.
//! `p = 1` drops everything (output 0, as PyTorch).
//!
//! # Shapes
//! `Dropout<S>`: input and output `S`.

use super::conv_common::prepare_dx;
use super::fit;
use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::DropoutKernels;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{single, Graph, Onnx};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::Rng;
use rand::RngCore;
use std::marker::PhantomData;

/// Options of a [`Dropout`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutConfig {
    /// Probability of dropping an element, in `[0, 1]` (default 0.5).
    pub p: f64,
}

impl Default for DropoutConfig {
    fn default() -> Self {
        DropoutConfig { p: 0.5 }
    }
}

/// Inverted dropout on samples of shape `S` (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct Dropout<S> {
    p: f64,
    _s: PhantomData<S>,
}

/// The seed of the last training call's mask.
#[derive(Clone, Copy, Debug, Default)]
pub struct DropoutCache {
    /// Seed of the SplitMix64 stream the mask was drawn from.
    pub seed: u64,
}

impl<S> Dropout<S> {
    /// Dropout with drop probability `p` (checked to lie in `[0, 1]`).
    pub fn new(p: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "Dropout",
                format!("p must be in [0, 1], got {p}"),
            ));
        }
        Ok(Dropout { p, _s: PhantomData })
    }
    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl<E: Elem, D: Backend<E>, S: Shape> Module<E, D> for Dropout<S> {
    type Grads = ();
    fn grads(&self) -> Result<()> {
        Ok(())
    }
    fn visit(&self, _: &Path<'_>, _: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {}
    fn visit_grads(
        &mut self,
        _: &(),
        _: &Path<'_>,
        _: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
    }
    fn visit_mut(&mut self, _: &Path<'_>, _: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role)) {}
}

impl<E: Elem, D: Backend<E>, S: Shape> Build<E, D> for Dropout<S> {
    type Config = DropoutConfig;
    fn build(_: &D, _: &mut Rng, cfg: DropoutConfig) -> Result<Self> {
        Self::new(cfg.p)
    }
}

impl<E: Elem, D: DropoutKernels<E>, S: Shape> Layer<E, D> for Dropout<S> {
    type In = S;
    type Out = S;
    type Cache = DropoutCache;
    const FLOPS: usize = S::NUMEL;
    fn cache(&self) -> Result<DropoutCache> {
        Ok(DropoutCache::default())
    }

    /// Evaluation: `y = x`.
    fn forward(
        &self,
        x: &Tensor<S, E, D>,
        y: &mut Tensor<S, E, D>,
        _: &mut DropoutCache,
    ) -> Result<()> {
        fit(y, x.batch())?;
        x.device().copy(&x.buf, &mut y.buf, x.numel())
    }

    /// Training: `y = x·m/(1 − p)` with a fresh seed from `ctx`.
    fn forward_train(
        &mut self,
        x: &Tensor<S, E, D>,
        y: &mut Tensor<S, E, D>,
        cache: &mut DropoutCache,
        ctx: &mut TrainCtx,
    ) -> Result<()> {
        cache.seed = ctx.rng.next_u64();
        fit(y, x.batch())?;
        x.device()
            .dropout_fwd(&x.buf, &mut y.buf, x.numel(), self.p, cache.seed)
    }

    /// `dx (acc)= dy·m/(1 − p)`, the mask recomputed from the cached seed.
    fn backward(
        &self,
        x: &Tensor<S, E, D>,
        _: &Tensor<S, E, D>,
        cache: &mut DropoutCache,
        dy: &Tensor<S, E, D>,
        dx: Option<(&mut Tensor<S, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        crate::error::check_batch(
            "Dropout backward",
            "input",
            x.batch(),
            "output gradient",
            dy.batch(),
        )?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        prepare_dx(dx, acc, x.batch())?;
        x.device()
            .dropout_bwd(&dy.buf, &mut dx.buf, x.numel(), self.p, cache.seed, acc)
    }
}

/// ONNX: `Identity` (inference semantics: dropout passes its input).
impl<S: Shape> Onnx for Dropout<S> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        Ok(vec![g.op("Identity", at, &[x], Vec::new())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{dropout_keep, dropout_threshold};
    use crate::shape::{S1, S2};
    use crate::testing::check_layer;
    use crate::Cpu;

    #[test]
    fn mask_is_splitmix64() {
        // SplitMix64 from state 0 outputs 0xE220A8397B1DCDAF, then 0x6E789E6AA1B965F4.
        assert!(dropout_keep(0, 0, 0xE220_A839_7B1D_CDAF));
        assert!(!dropout_keep(0, 0, 0xE220_A839_7B1D_CDB0));
        assert!(dropout_keep(0, 1, 0x6E78_9E6A_A1B9_65F4));
        assert!(!dropout_keep(0, 1, 0x6E78_9E6A_A1B9_65F5));
        assert_eq!(dropout_threshold(0.0), 0);
        assert_eq!(dropout_threshold(0.5), 1 << 63);
    }

    #[test]
    fn train_drops_and_scales_eval_is_identity() {
        const N: usize = 20_000;
        let x = Tensor::<S1<N>, f64>::from_vec(&Cpu, 1, vec![2.0; N]).unwrap();
        let mut d = Dropout::<S1<N>>::new(0.3).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        let mut c = DropoutCache::default();
        d.forward(&x, &mut y, &mut c).unwrap();
        assert!(y.to_vec().unwrap().iter().all(|&v| v == 2.0));
        d.forward_train(&x, &mut y, &mut c, &mut TrainCtx::new(7))
            .unwrap();
        let y1 = y.to_vec().unwrap();
        let kept = y1.iter().filter(|&&v| v != 0.0).count();
        assert!(y1
            .iter()
            .all(|&v| v == 0.0 || (v - 2.0 / 0.7).abs() < 1e-12));
        // 14 000 expected kept, standard deviation √(N·0.3·0.7) ≈ 65.
        assert!((kept as f64 - 14_000.0).abs() < 400.0, "{kept}");
        // Same seed, same mask; the next call draws another.
        let mut ctx = TrainCtx::new(7);
        d.forward_train(&x, &mut y, &mut c, &mut ctx).unwrap();
        assert_eq!(y.to_vec().unwrap(), y1);
        d.forward_train(&x, &mut y, &mut c, &mut ctx).unwrap();
        assert_ne!(y.to_vec().unwrap(), y1);
        // Backward uses the same mask as the last forward.
        let y2 = y.to_vec().unwrap();
        let mut dx = Tensor::empty(&Cpu).unwrap();
        d.backward(
            &x,
            &y,
            &mut c,
            &x,
            Some((&mut dx, Acc::Set)),
            &mut (),
            Acc::Set,
        )
        .unwrap();
        assert_eq!(dx.to_vec().unwrap(), y2);
        // p = 1 drops everything; p = 0 keeps everything.
        Dropout::<S1<N>>::new(1.0)
            .unwrap()
            .forward_train(&x, &mut y, &mut c, &mut ctx)
            .unwrap();
        assert!(y.to_vec().unwrap().iter().all(|&v| v == 0.0));
        Dropout::<S1<N>>::new(0.0)
            .unwrap()
            .forward_train(&x, &mut y, &mut c, &mut ctx)
            .unwrap();
        assert!(y.to_vec().unwrap().iter().all(|&v| v == 2.0));
        assert!(Dropout::<S1<N>>::new(1.5).is_err());
    }

    #[test]
    fn gradcheck() {
        assert!(check_layer(&mut Dropout::<S2<3, 5>>::new(0.3).unwrap(), 4, 1).unwrap() < 1e-6);
        assert!(check_layer(&mut Dropout::<S1<7>>::new(0.5).unwrap(), 3, 2).unwrap() < 1e-6);
    }
}
