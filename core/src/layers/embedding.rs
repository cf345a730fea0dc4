//! Embedding table, `y[b, t, :] = W[id[b, t], :]` (PyTorch's `nn.Embedding`).
//!
//! With token ids `x` of shape `[B, T]` over a vocabulary of `V` and the
//! table `W` of shape `[V, DIM]`:
//!
//! * forward (gather): `y[b, t, :] = W[x[b, t], :]`, `y` of shape `[B, T, DIM]`;
//! * `∂L/∂W[v, :] = Σ_{(b, t) : x[b, t] = v} ∂L/∂y[b, t, :]` (scatter-add; a
//!   token repeated in the batch sums its gradients), `0` for a row no token
//!   refers to, and always `0` for the `padding_idx` row, which is also
//!   initialised to zero, so it stays exactly zero under any optimizer whose
//!   update of a zero parameter with a zero gradient is zero (SGD, Adam,
//!   AdamW, Adagrad, RMSprop — tested with Adam);
//! * no input gradient: the input is integer ids.
//!
//! Sums run in position order on every device (no float atomics), so the
//! gradient is deterministic.
//!
//! # Not a `Layer`: [`TokenLayer`]
//! Its input is [`Tokens`], not a float tensor, so `Embedding` implements
//! [`TokenLayer`] (and [`Module`], [`Build`]) instead of [`crate::Layer`].
//! The trait is generic over the per-sample id shape `S` and the vocabulary
//! `V`, so one `Embedding<E, D, V, DIM>` serves every sequence length `T`
//! (training at `T = 64`, generating at `T = 1`) and an id tensor over
//! another vocabulary is a compile error.
//!
//! ```
//! use kiln_core::layers::{Embedding, EmbeddingConfig, TokenLayer};
//! use kiln_core::{rng, Build, Cpu, Tensor, Tokens, S1};
//! let mut e = Embedding::<f32, Cpu, 4, 2>::build(&Cpu, &mut rng(0), EmbeddingConfig::default()).unwrap();
//! e.weight.copy_from_slice(&[0., 1., 10., 11., 20., 21., 30., 31.]).unwrap();
//! let x = Tokens::<S1<3>, 4>::new::<f32>(&Cpu, &[3, 0, 3]).unwrap();
//! let mut y = Tensor::empty(&Cpu).unwrap();
//! e.forward(&x, &mut y, &mut ()).unwrap();
//! assert_eq!(y.to_vec().unwrap(), vec![30., 31., 0., 1., 30., 31.]);
//! ```

use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::kernels::EmbeddingKernels;
use crate::module::{Build, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::{Shape, S1, S2, S3};
use crate::tensor::{Tensor, Tokens};
use crate::Rng;

/// A layer that reads token ids of per-sample shape `S` over a vocabulary of
/// `V` and writes a float tensor: the counterpart of [`crate::Layer`] for
/// integer inputs. Generated code calls it exactly like a `Layer`, without
/// an input gradient:
///
/// ```text
/// TokenLayer::<E, D, S1<T>, V>::forward_train(&mut self.tok, &ids, &mut y, &mut cache, &mut ctx)?;
/// TokenLayer::<E, D, S1<T>, V>::backward(&self.tok, &ids, &y, &mut cache, &dy, &mut grads.tok, Acc::Set)?;
/// ```
///
/// `forward` and `forward_train` resize `y` to `x`'s batch; `backward`
/// writes the parameter gradients into `grads`, overwriting them with
/// [`Acc::Set`] (the first contribution) or adding with [`Acc::Add`] (a table
/// shared by two uses).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not read token ids of shape `{S}` over a vocabulary of {V}",
    label = "the ids' vocabulary (or shape) differs from the layer's",
    note = "an `Embedding<E, D, V, DIM>` reads `Tokens<S1<T>, V>` (any `T`) with the same `V`"
)]
pub trait TokenLayer<E: Elem, D: Backend<E>, S: Shape, const V: usize>: Module<E, D> {
    /// Per-sample output shape.
    type Out: Shape;
    /// What `backward` needs besides the ids and the output (nothing for `Embedding`).
    type Cache;
    /// Multiply–adds per sample of the forward pass (0 for a gather).
    const FLOPS: usize;
    /// An empty cache.
    fn cache(&self) -> Result<Self::Cache>;
    /// Inference: `y = f(x)`, `y` resized to `x`'s batch.
    fn forward(
        &self,
        x: &Tokens<S, V, D>,
        y: &mut Tensor<Self::Out, E, D>,
        cache: &mut Self::Cache,
    ) -> Result<()>;
    /// Training mode: like `forward`, keeping in `cache` what `backward` needs.
    fn forward_train(
        &mut self,
        x: &Tokens<S, V, D>,
        y: &mut Tensor<Self::Out, E, D>,
        cache: &mut Self::Cache,
        ctx: &mut TrainCtx,
    ) -> Result<()>;
    /// The hand-derived backward pass: parameter gradients only (ids have none).
    #[allow(clippy::too_many_arguments)] // the contract's signature, as `Layer::backward` without `dx`
    fn backward(
        &self,
        x: &Tokens<S, V, D>,
        y: &Tensor<Self::Out, E, D>,
        cache: &mut Self::Cache,
        dy: &Tensor<Self::Out, E, D>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()>;
}

/// Options of an [`Embedding`] (PyTorch's `nn.Embedding` arguments).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmbeddingConfig {
    /// The row that is initialised to zero and receives no gradient
    /// (`padding_idx`, default none); must be below the vocabulary size.
    pub padding_idx: Option<usize>,
    /// Initialiser of the table (default `N(0, 1)`, PyTorch's).
    pub init: Init,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            padding_idx: None,
            init: Init::Normal(1.0),
        }
    }
}

/// A table of `V` rows of `DIM` values, indexed by token id.
pub struct Embedding<E: Elem, D: Backend<E>, const V: usize, const DIM: usize> {
    /// `[V, DIM]` (`weight` in PyTorch's `state_dict`).
    pub weight: Tensor<S2<V, DIM>, E, D>,
    /// The row that receives no gradient.
    pub padding_idx: Option<usize>,
}

/// Gradients of an [`Embedding`].
pub struct EmbeddingGrads<E: Elem, D: Backend<E>, const V: usize, const DIM: usize> {
    /// `∂L/∂W`, `[V, DIM]`.
    pub weight: Tensor<S2<V, DIM>, E, D>,
}

impl<E: Elem, D: Backend<E>, const V: usize, const DIM: usize> Build<E, D>
    for Embedding<E, D, V, DIM>
{
    type Config = EmbeddingConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: EmbeddingConfig) -> Result<Self> {
        if let Some(p) = cfg.padding_idx {
            if p >= V {
                return Err(Error::invalid(
                    "Embedding",
                    format!("padding_idx {p} is not below the vocabulary size {V}"),
                ));
            }
        }
        let mut weight = cfg.init.tensor::<S2<V, DIM>, E, D>(dev, rng)?;
        if let Some(p) = cfg.padding_idx {
            // PyTorch: `self.weight[padding_idx].fill_(0)` after the draw.
            let mut w = weight.to_vec()?;
            w[p * DIM..(p + 1) * DIM].fill(E::zero());
            weight.copy_from_slice(&w)?;
        }
        Ok(Embedding {
            weight,
            padding_idx: cfg.padding_idx,
        })
    }
}

impl<E: Elem, D: Backend<E>, const V: usize, const DIM: usize> Module<E, D>
    for Embedding<E, D, V, DIM>
{
    type Grads = EmbeddingGrads<E, D, V, DIM>;
    fn grads(&self) -> Result<Self::Grads> {
        Ok(EmbeddingGrads {
            weight: Tensor::zeros(self.weight.device(), 1)?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        f(
            &path.child("weight"),
            ParamRef::of(&self.weight, Role::Param),
        );
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        f(
            &path.child("weight"),
            ParamMut::of(&mut self.weight, Some(&g.weight)),
        );
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        f(
            &path.child("weight"),
            ParamMut::of(&mut self.weight, None),
            Role::Param,
        );
    }
}

impl<E: Elem, D: EmbeddingKernels<E>, const V: usize, const DIM: usize> Embedding<E, D, V, DIM> {
    /// One id per sample to its row: `y[b] = W[ids[b]]` (decoding one
    /// position at a time, see [`crate::layers::KvCache`]).
    pub fn lookup_rows(
        &self,
        ids: &Tokens<S1<1>, V, D>,
        y: &mut Tensor<S1<DIM>, E, D>,
    ) -> Result<()> {
        self.gather(ids, y)
    }

    fn gather<S: Shape, O: Shape>(
        &self,
        x: &Tokens<S, V, D>,
        y: &mut Tensor<O, E, D>,
    ) -> Result<()> {
        y.set_batch(x.batch())?;
        x.device()
            .embedding_fwd(&self.weight.buf, &x.buf, &mut y.buf, x.numel(), V, DIM)
    }
    fn scatter<S: Shape, O: Shape>(
        &self,
        x: &Tokens<S, V, D>,
        dy: &Tensor<O, E, D>,
        grads: &mut EmbeddingGrads<E, D, V, DIM>,
        gacc: Acc,
    ) -> Result<()> {
        crate::error::check_batch("Embedding backward", "ids", x.batch(), "dy", dy.batch())?;
        x.device().embedding_bwd(
            &x.buf,
            &dy.buf,
            &mut grads.weight.buf,
            x.numel(),
            V,
            DIM,
            self.padding_idx,
            gacc,
        )
    }
}

macro_rules! token_layer {
    ($in:ty => $out:ty; $($g:ident),*) => {
        impl<E: Elem, D: EmbeddingKernels<E>, const V: usize, const DIM: usize, $(const $g: usize),*>
            TokenLayer<E, D, $in, V> for Embedding<E, D, V, DIM>
        {
            type Out = $out;
            type Cache = ();
            const FLOPS: usize = 0;
            fn cache(&self) -> Result<()> {
                Ok(())
            }
            fn forward(&self, x: &Tokens<$in, V, D>, y: &mut Tensor<$out, E, D>, _: &mut ()) -> Result<()> {
                self.gather(x, y)
            }
            fn forward_train(
                &mut self,
                x: &Tokens<$in, V, D>,
                y: &mut Tensor<$out, E, D>,
                _: &mut (),
                _: &mut TrainCtx,
            ) -> Result<()> {
                self.gather(x, y)
            }
            fn backward(
                &self,
                x: &Tokens<$in, V, D>,
                _y: &Tensor<$out, E, D>,
                _: &mut (),
                dy: &Tensor<$out, E, D>,
                grads: &mut Self::Grads,
                gacc: Acc,
            ) -> Result<()> {
                self.scatter(x, dy, grads, gacc)
            }
        }
    };
}

// `[T]` ids → `[T, DIM]`; `[A, B]` ids → `[A, B, DIM]`.
token_layer!(S1<T> => S2<T, DIM>; T);
token_layer!(S2<A, B> => S3<A, B, DIM>; A, B);

/// ONNX: `Gather(weight, ids, axis = 0)`, the ids an `int64` graph input
/// (`[batch, T]`), the table `{path}.weight`.
impl<E: Elem, D: Backend<E>, const V: usize, const DIM: usize> Onnx for Embedding<E, D, V, DIM> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let ids = single(at, inputs)?;
        let w = g.param(&join(at, "weight"), &self.weight)?;
        Ok(vec![g.op(
            "Gather",
            at,
            &[&w, ids],
            vec![graph::int("axis", 0)],
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Adam, Optimizer};
    use crate::{rng, Cpu};

    type Emb = Embedding<f64, Cpu, 5, 3>;

    fn table(padding_idx: Option<usize>) -> Emb {
        let cfg = EmbeddingConfig {
            padding_idx,
            ..Default::default()
        };
        Emb::build(&Cpu, &mut rng(3), cfg).unwrap()
    }

    #[test]
    fn forward_gathers_rows_and_backward_scatters_with_repeats_and_padding() {
        let mut e = table(Some(1));
        let w: Vec<f64> = (0..15).map(|i| i as f64).collect();
        e.weight.copy_from_slice(&w).unwrap();
        // two samples of T = 3; id 4 repeated, id 1 is padding
        let x = Tokens::<S1<3>, 5>::new::<f64>(&Cpu, &[4, 1, 0, 4, 2, 4]).unwrap();
        let mut y = Tensor::<S2<3, 3>, f64>::empty(&Cpu).unwrap();
        TokenLayer::<f64, Cpu, S1<3>, 5>::forward(&e, &x, &mut y, &mut ()).unwrap();
        assert_eq!(
            y.to_vec().unwrap(),
            vec![
                12., 13., 14., 3., 4., 5., 0., 1., 2., //
                12., 13., 14., 6., 7., 8., 12., 13., 14.
            ]
        );
        let dyv: Vec<f64> = (0..18).map(|i| 0.5 * i as f64 - 1.0).collect();
        let dy = Tensor::<S2<3, 3>, f64>::from_slice(&Cpu, &dyv).unwrap();
        let mut g = e.grads().unwrap();
        g.weight.copy_from_slice(&[9.0; 15]).unwrap(); // Set overwrites
        TokenLayer::<f64, Cpu, S1<3>, 5>::backward(&e, &x, &y, &mut (), &dy, &mut g, Acc::Set)
            .unwrap();
        let row = |i: usize| &dyv[i * 3..i * 3 + 3];
        let mut want = vec![0.0; 15];
        want[0..3].copy_from_slice(row(2)); // id 0 at position 2
        want[6..9].copy_from_slice(row(4)); // id 2 at position 4
        for j in 0..3 {
            want[12 + j] = row(0)[j] + row(3)[j] + row(5)[j]; // id 4 three times
        }
        // row 1 (padding) and row 3 (unused) stay 0
        assert_eq!(g.weight.to_vec().unwrap(), want);
        // Add accumulates on top
        TokenLayer::<f64, Cpu, S1<3>, 5>::backward(&e, &x, &y, &mut (), &dy, &mut g, Acc::Add)
            .unwrap();
        let twice: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
        assert_eq!(g.weight.to_vec().unwrap(), twice);
    }

    #[test]
    fn weight_gradient_matches_finite_differences() {
        // L(W) = Σ y ⊙ r; central differences in f64 on every table entry.
        let mut e = table(Some(2));
        let x =
            Tokens::<S2<2, 3>, 5>::new::<f64>(&Cpu, &[0, 2, 4, 4, 1, 0, 3, 3, 2, 0, 1, 4]).unwrap();
        let mut r = rng(9);
        let rv = crate::testing::random_input(x.numel() * 3, &mut r);
        let rt = Tensor::<S3<2, 3, 3>, f64>::from_slice(&Cpu, &rv).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        let loss = |e: &Emb, y: &mut Tensor<S3<2, 3, 3>, f64>| -> f64 {
            TokenLayer::<f64, Cpu, S2<2, 3>, 5>::forward(e, &x, y, &mut ()).unwrap();
            y.to_vec()
                .unwrap()
                .iter()
                .zip(&rv)
                .map(|(a, b)| a * b)
                .sum()
        };
        loss(&e, &mut y);
        let mut g = e.grads().unwrap();
        TokenLayer::<f64, Cpu, S2<2, 3>, 5>::backward(&e, &x, &y, &mut (), &rt, &mut g, Acc::Set)
            .unwrap();
        let analytic = g.weight.to_vec().unwrap();
        let w0 = e.weight.to_vec().unwrap();
        let h = 1e-5;
        for i in 0..15 {
            let mut w = w0.clone();
            w[i] += h;
            e.weight.copy_from_slice(&w).unwrap();
            let lp = loss(&e, &mut y);
            w[i] -= 2.0 * h;
            e.weight.copy_from_slice(&w).unwrap();
            let lm = loss(&e, &mut y);
            let numeric = (lp - lm) / (2.0 * h);
            // the padding row (2) has a numerical gradient but receives none
            let want = if i / 3 == 2 { 0.0 } else { numeric };
            assert!(
                (analytic[i] - want).abs() <= 1e-8 * (1.0 + want.abs()),
                "dW[{i}] = {} vs {want}",
                analytic[i]
            );
            if i / 3 != 2 && i / 3 != 3 {
                assert!(
                    numeric.abs() > 1e-3,
                    "entry {i} is used: its gradient is not 0"
                );
            }
        }
        e.weight.copy_from_slice(&w0).unwrap();
    }

    #[test]
    fn init_is_standard_normal_with_a_zero_padding_row() {
        let e = Embedding::<f64, Cpu, 200, 50>::build(
            &Cpu,
            &mut rng(1),
            EmbeddingConfig {
                padding_idx: Some(7),
                ..Default::default()
            },
        )
        .unwrap();
        let w = e.weight.to_vec().unwrap();
        assert!(w[7 * 50..8 * 50].iter().all(|&v| v == 0.0));
        let rest: Vec<f64> = w[..7 * 50].iter().chain(&w[8 * 50..]).copied().collect();
        let n = rest.len() as f64;
        let mean = rest.iter().sum::<f64>() / n;
        let var = rest.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        let err = Embedding::<f64, Cpu, 4, 2>::build(
            &Cpu,
            &mut rng(1),
            EmbeddingConfig {
                padding_idx: Some(4),
                ..Default::default()
            },
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "invalid argument to Embedding: padding_idx 4 is not below the vocabulary size 4"
        );
    }

    #[test]
    fn padding_row_stays_exactly_zero_after_adam_steps() {
        let mut e = table(Some(0));
        let mut opt = Adam::<f64, Cpu>::new(0.1);
        let x = Tokens::<S1<4>, 5>::new::<f64>(&Cpu, &[0, 3, 0, 1]).unwrap();
        let mut y = Tensor::<S2<4, 3>, f64>::empty(&Cpu).unwrap();
        let mut g = e.grads().unwrap();
        let before = e.weight.to_vec().unwrap();
        for _ in 0..3 {
            TokenLayer::<f64, Cpu, S1<4>, 5>::forward_train(
                &mut e,
                &x,
                &mut y,
                &mut (),
                &mut TrainCtx::new(0),
            )
            .unwrap();
            let dy = y.try_clone().unwrap(); // L = ½‖y‖²
            TokenLayer::<f64, Cpu, S1<4>, 5>::backward(&e, &x, &y, &mut (), &dy, &mut g, Acc::Set)
                .unwrap();
            opt.step(&mut e, &g).unwrap();
        }
        let w = e.weight.to_vec().unwrap();
        assert_eq!(&w[0..3], &[0.0; 3], "padding row moved");
        assert_ne!(&w[3..6], &before[3..6], "row 1 is trained");
        assert_eq!(&w[6..9], &before[6..9], "row 2 is never used");
        let mut names = Vec::new();
        e.visit(&Path::ROOT, &mut |p, r| {
            names.push((p.to_string(), r.dims.to_vec()))
        });
        assert_eq!(names, vec![("weight".to_string(), vec![5, 3])]);
    }
}
