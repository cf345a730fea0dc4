//! A [`super::Linear`] whose weight is another layer's tensor (weight tying:
//! nanoGPT's `lm_head.weight` *is* `transformer.wte.weight`).
//!
//! `network!` writes `head: Linear(V, bias = false, tied = wte)` for it: the
//! head owns only its (optional) bias, and every pass borrows the weight of
//! the layer it is tied to through [`TiedWeight`] — an `Embedding(V, D)`
//! table is `[V, D]`, exactly a `Linear(D, V)` weight `[O, I]`, so one tensor
//! serves both. With `W` that table, `x` a batch `[B, I]` (`B·ROWS` rows
//! when the layer acts on a sequence, as `Linear`):
//!
//! * forward: `y = x·Wᵀ + b`;
//! * `∂L/∂x = ∂L/∂y · W`;
//! * `∂L/∂W += (∂L/∂y)ᵀ · x` into the *owner's* gradient, so the tensor's
//!   gradient is the sum of both uses (the generated backward sets it at the
//!   first contribution and adds at the second, whichever runs first);
//! * `∂L/∂b = Σ_rows ∂L/∂y`.
//!
//! Nothing is cached. The weight is visited once, under the owner's name
//! (`wte.weight`), so an optimizer updates it once, `num_params` and
//! `PARAMS` count it once, and a checkpoint holds it once (see the `network!`
//! docs: PyTorch's `state_dict` lists it under both names, safetensors
//! refuses shared tensors, kiln writes the owner's name only).
//!
//! # Shapes
//! `TiedLinear<E, D, I, O, L>`: input `L::Shaped<I>`, output `L::Shaped<O>`,
//! borrowed weight `S2<O, I>`; the owner must be a [`TiedWeight`] whose
//! `Weight` is `S2<O, I>` (checked by `network!` with both shapes in the
//! message, and by the compiler).

use super::fit;
use super::Embedding;
use crate::device::{Acc, Backend, Gemm};
use crate::elem::Elem;
use crate::error::Result;
use crate::init::Init;
use crate::module::{Build, Module, ParamMut, ParamRef, Path, Role};
use crate::onnx::{graph, join, Graph, Onnx};
use crate::shape::{Lead, Shape, S1, S2};
use crate::tensor::Tensor;
use crate::Rng;
use std::marker::PhantomData;

use super::LinearConfig;

/// A layer whose weight another layer may borrow (`Embedding`'s table).
pub trait TiedWeight<E: Elem, D: Backend<E>>: Module<E, D> {
    /// The weight's per-sample shape (`S2<V, DIM>`).
    type Weight: Shape;
    /// The weight.
    fn tied_weight(&self) -> &Tensor<Self::Weight, E, D>;
    /// The weight's gradient inside the layer's gradients.
    fn tied_weight_grad(g: &mut Self::Grads) -> &mut Tensor<Self::Weight, E, D>;
}

impl<E: Elem, D: Backend<E>, const V: usize, const DIM: usize> TiedWeight<E, D>
    for Embedding<E, D, V, DIM>
{
    type Weight = S2<V, DIM>;
    fn tied_weight(&self) -> &Tensor<S2<V, DIM>, E, D> {
        &self.weight
    }
    fn tied_weight_grad(g: &mut Self::Grads) -> &mut Tensor<S2<V, DIM>, E, D> {
        &mut g.weight
    }
}

/// `y = x·Wᵀ + b` with `W` borrowed (see the [module docs](self)).
pub struct TiedLinear<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead = ()> {
    /// `[O]`, absent with `bias = false` (nanoGPT's head has none).
    pub bias: Option<Tensor<S1<O>, E, D>>,
    /// The leading dimensions (a type only).
    pub lead: PhantomData<(L, E, D)>,
}

/// Gradients of a [`TiedLinear`]'s own parameter (the weight's go to its owner).
pub struct TiedLinearGrads<E: Elem, D: Backend<E>, const O: usize> {
    /// `∂L/∂b`, `[O]`.
    pub bias: Option<Tensor<S1<O>, E, D>>,
}

impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> Build<E, D>
    for TiedLinear<E, D, I, O, L>
{
    type Config = LinearConfig;
    /// Only the bias is drawn (as `Linear`'s: PyTorch's `U(±1/√I)` with the
    /// default initialiser, zeros with any other); `cfg.init` has no weight to fill.
    fn build(dev: &D, rng: &mut Rng, cfg: LinearConfig) -> Result<Self> {
        let bias = if !cfg.bias {
            None
        } else if cfg.init == Init::TorchDefault {
            Some(Init::TorchDefault.tensor_with_fans::<S1<O>, E, D>(dev, rng, &[O, I])?)
        } else {
            Some(Tensor::zeros(dev, 1)?)
        };
        Ok(TiedLinear {
            bias,
            lead: PhantomData,
        })
    }
}

impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> Module<E, D>
    for TiedLinear<E, D, I, O, L>
{
    type Grads = TiedLinearGrads<E, D, O>;
    fn grads(&self) -> Result<Self::Grads> {
        Ok(TiedLinearGrads {
            bias: match &self.bias {
                Some(b) => Some(Tensor::zeros(b.device(), 1)?),
                None => None,
            },
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        if let Some(b) = &self.bias {
            f(&path.child("bias"), ParamRef::of(b, Role::Param));
        }
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        if let (Some(b), Some(gb)) = (&mut self.bias, &g.bias) {
            f(&path.child("bias"), ParamMut::of(b, Some(gb)));
        }
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        if let Some(b) = &mut self.bias {
            f(&path.child("bias"), ParamMut::of(b, None), Role::Param);
        }
    }
}

impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> TiedLinear<E, D, I, O, L> {
    /// Multiply–adds per sample.
    pub const FLOPS: usize = L::ROWS * I * O;

    /// `y = x·Wᵀ + b` with the borrowed `w` (`[O, I]`).
    pub fn forward(
        &self,
        w: &Tensor<S2<O, I>, E, D>,
        x: &Tensor<L::Shaped<I>, E, D>,
        y: &mut Tensor<L::Shaped<O>, E, D>,
    ) -> Result<()> {
        fit(y, x.batch())?;
        let b = x.batch() * L::ROWS;
        let dev = x.device();
        // y[B×O] = x[B×I] · Wᵀ  (W stored [O×I])
        dev.gemm(
            &Gemm::dense(b, O, I, false, true),
            &x.buf,
            &w.buf,
            &mut y.buf,
        )?;
        if let Some(bias) = &self.bias {
            dev.add_bias(&mut y.buf, &bias.buf, b, O)?;
        }
        Ok(())
    }

    /// [`TiedLinear::forward`] on single rows: each sample of `x` is one row
    /// of `I` (decoding one position at a time, see
    /// [`crate::layers::KvCache`]), whatever the leading dimensions `L`.
    pub fn forward_rows(
        &self,
        w: &Tensor<S2<O, I>, E, D>,
        x: &Tensor<S1<I>, E, D>,
        y: &mut Tensor<S1<O>, E, D>,
    ) -> Result<()> {
        y.set_batch(x.batch())?;
        let dev = x.device();
        dev.gemm(
            &Gemm::dense(x.batch(), O, I, false, true),
            &x.buf,
            &w.buf,
            &mut y.buf,
        )?;
        if let Some(bias) = &self.bias {
            dev.add_bias(&mut y.buf, &bias.buf, x.batch(), O)?;
        }
        Ok(())
    }

    /// The backward pass: `∂L/∂W` into the owner's gradient `dw` per `wacc`,
    /// the bias gradient into `grads` per `gacc`, `∂L/∂x` into `dx`.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)] // the layer contract plus the borrowed weight and its gradient
    pub fn backward(
        &self,
        w: &Tensor<S2<O, I>, E, D>,
        x: &Tensor<L::Shaped<I>, E, D>,
        dy: &Tensor<L::Shaped<O>, E, D>,
        dx: Option<(&mut Tensor<L::Shaped<I>, E, D>, Acc)>,
        grads: &mut TiedLinearGrads<E, D, O>,
        dw: &mut Tensor<S2<O, I>, E, D>,
        wacc: Acc,
        gacc: Acc,
    ) -> Result<()> {
        let b = x.batch() * L::ROWS;
        let dev = x.device();
        // ∂L/∂W [O×I] = dyᵀ [O×B] · x [B×I], set or added into the owner's gradient
        dev.gemm(
            &Gemm::dense(O, I, b, true, false).acc(wacc),
            &dy.buf,
            &x.buf,
            &mut dw.buf,
        )?;
        if let Some(gb) = &mut grads.bias {
            dev.bias_grad(&dy.buf, &mut gb.buf, b, O, gacc)?;
        }
        // ∂L/∂x [B×I] = dy [B×O] · W [O×I]
        if let Some((dx, acc)) = dx {
            if acc == Acc::Set {
                fit(dx, x.batch())?;
            }
            dev.gemm(
                &Gemm::dense(b, I, O, false, false).acc(acc),
                &dy.buf,
                &w.buf,
                &mut dx.buf,
            )?;
        }
        Ok(())
    }
}

/// Not through [`Onnx`], which knows only the input: the head needs its
/// owner's weight, so `network!` calls [`TiedLinear::onnx_tied`].
impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> Onnx
    for TiedLinear<E, D, I, O, L>
{
}

impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> TiedLinear<E, D, I, O, L> {
    /// ONNX: `MatMul(x, Transpose(W)) + b`, `W` the owner's weight written
    /// once under its own `state_dict` name `owner` (`wte.weight`, `[O, I]`:
    /// the same initializer the embedding's `Gather` reads), `b`
    /// `{path}.bias`.
    pub fn onnx_tied<S: Shape>(
        &self,
        g: &mut Graph,
        at: &str,
        x: &str,
        owner: &str,
        weight: &Tensor<S, E, D>,
    ) -> Result<Vec<String>> {
        let w = g.param(owner, weight)?;
        let wt = g.op(
            "Transpose",
            &join(at, "weight_t"),
            &[&w],
            vec![graph::ints("perm", &[1, 0])],
        );
        let y = g.op("MatMul", at, &[x, &wt], Vec::new());
        Ok(vec![match &self.bias {
            Some(b) => {
                let b = g.param(&join(at, "bias"), b)?;
                g.op("Add", at, &[&y, &b], Vec::new())
            }
            None => y,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Linear, LinearConfig};
    use crate::module::Layer;
    use crate::{rng, Cpu};

    /// A tied layer computes what a `Linear` with the same weight computes,
    /// forward and backward, and sends the weight gradient to the owner.
    #[test]
    fn matches_an_untied_linear_with_the_same_weight() {
        let cfg = LinearConfig::default();
        let lin = Linear::<f64, Cpu, 3, 4>::build(&Cpu, &mut rng(1), cfg).unwrap();
        let mut tied = TiedLinear::<f64, Cpu, 3, 4>::build(&Cpu, &mut rng(2), cfg).unwrap();
        tied.bias
            .as_mut()
            .unwrap()
            .assign(lin.bias.as_ref().unwrap())
            .unwrap();
        let x = Tensor::<S1<3>, f64>::from_slice(&Cpu, &[0.5, -1.0, 2.0, 1.5, 0.0, -0.5]).unwrap();
        let dy =
            Tensor::<S1<4>, f64>::from_slice(&Cpu, &[1.0, -2.0, 0.5, 0.25, 0.0, 1.0, -1.0, 2.0])
                .unwrap();
        let (mut y1, mut y2) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
        lin.forward(&x, &mut y1, &mut ()).unwrap();
        tied.forward(&lin.weight, &x, &mut y2).unwrap();
        assert_eq!(y1.to_vec().unwrap(), y2.to_vec().unwrap());
        let mut g1 = lin.grads().unwrap();
        let mut g2 = tied.grads().unwrap();
        let (mut dx1, mut dx2) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
        lin.backward(
            &x,
            &y1,
            &mut (),
            &dy,
            Some((&mut dx1, Acc::Set)),
            &mut g1,
            Acc::Set,
        )
        .unwrap();
        // The owner's gradient already holds another use's contribution: 1 everywhere.
        let mut dw = Tensor::<S2<4, 3>, f64>::from_vec(&Cpu, 1, vec![1.0; 12]).unwrap();
        tied.backward(
            &lin.weight,
            &x,
            &dy,
            Some((&mut dx2, Acc::Set)),
            &mut g2,
            &mut dw,
            Acc::Add,
            Acc::Set,
        )
        .unwrap();
        assert_eq!(dx1.to_vec().unwrap(), dx2.to_vec().unwrap());
        let want: Vec<f64> = g1
            .weight
            .to_vec()
            .unwrap()
            .iter()
            .map(|g| g + 1.0)
            .collect();
        assert_eq!(dw.to_vec().unwrap(), want);
        assert_eq!(
            g1.bias.unwrap().to_vec().unwrap(),
            g2.bias.unwrap().to_vec().unwrap()
        );
        // Only the bias is the layer's own parameter.
        let mut names = Vec::new();
        tied.visit(&Path::ROOT, &mut |p, _| names.push(p.to_string()));
        assert_eq!(names, ["bias"]);
    }
}
