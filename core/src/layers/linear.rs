//! Fully connected layer, `y = x·Wᵀ + b` (PyTorch's `nn.Linear`).
//!
//! With `x` a batch `[B, I]`, `W` of shape `[O, I]` and `b` of shape `[O]`:
//!
//! * forward: `y = x·Wᵀ + b` — one GEMM plus a broadcast bias;
//! * `∂L/∂x = ∂L/∂y · W` — `[B, O]·[O, I]`;
//! * `∂L/∂W = (∂L/∂y)ᵀ · x` — `[O, B]·[B, I]`, summed over the batch by the product;
//! * `∂L/∂b = Σ_batch ∂L/∂y`.
//!
//! Nothing is cached: the backward pass needs only the input `x`, which the
//! tape already holds.
//!
//! # Shapes
//! `Linear<E, D, I, O>`: input `S1<I>`, output `S1<O>`, weight `S2<O, I>`
//! (PyTorch's layout, so `state_dict` weights exchange unchanged).
//!
//! `Linear<E, D, I, O, L>` acts on the last dimension at every position of
//! the leading dimensions `L` (see [`Lead`]), as PyTorch's `nn.Linear` does:
//! `Linear<E, D, 16, 32, S1<T>>` maps `[T, 16]` to `[T, 32]`. A batch of `B`
//! samples is then `B·T` rows of `I` features, and every formula above holds
//! with `B·T` in place of `B` — one GEMM for all positions, and `∂L/∂W`,
//! `∂L/∂b` summed over them. The weights do not depend on `L`: layers that
//! differ only in `L` share [`LinearGrads`] and load each other's parameters.
//!
//! ```
//! use kiln_core::{layers::{Linear, LinearConfig}, Build, Cpu, Layer, Tensor, S1, rng};
//! let mut l = Linear::<f64, Cpu, 3, 2>::build(&Cpu, &mut rng(0), LinearConfig::default()).unwrap();
//! l.weight.copy_from_slice(&[1., 0., 0., 0., 1., 1.]).unwrap();
//! let x = Tensor::<S1<3>, f64>::from_slice(&Cpu, &[1., 2., 3.]).unwrap();
//! let mut y = Tensor::empty(&Cpu).unwrap();
//! l.bias.as_mut().unwrap().copy_from_slice(&[0.5, -1.]).unwrap();
//! l.forward(&x, &mut y, &mut ()).unwrap();
//! assert_eq!(y.to_vec().unwrap(), vec![1.5, 4.0]);
//! ```

use super::fit;
use crate::device::{Acc, Backend, Gemm};
use crate::elem::Elem;
use crate::error::Result;
use crate::init::Init;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::{Lead, S1, S2};
use crate::tensor::Tensor;
use crate::Rng;
use std::marker::PhantomData;

/// Options of a [`Linear`] layer.
#[derive(Clone, Copy, Debug)]
pub struct LinearConfig {
    /// Whether the layer has a bias (default true).
    pub bias: bool,
    /// Weight initialiser (default: PyTorch's).
    pub init: Init,
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig {
            bias: true,
            init: Init::TorchDefault,
        }
    }
}

/// `y = x·Wᵀ + b` from `I` to `O` features, at each position of the leading
/// dimensions `L` (none by default).
pub struct Linear<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead = ()> {
    /// `[O, I]`, PyTorch's layout.
    pub weight: Tensor<S2<O, I>, E, D>,
    /// `[O]`, absent with `bias = false`.
    pub bias: Option<Tensor<S1<O>, E, D>>,
    /// The leading dimensions (a type only).
    pub lead: PhantomData<L>,
}

/// Gradients of a [`Linear`] layer.
pub struct LinearGrads<E: Elem, D: Backend<E>, const I: usize, const O: usize> {
    /// `∂L/∂W`, `[O, I]`.
    pub weight: Tensor<S2<O, I>, E, D>,
    /// `∂L/∂b`, `[O]`.
    pub bias: Option<Tensor<S1<O>, E, D>>,
}

impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> Build<E, D>
    for Linear<E, D, I, O, L>
{
    type Config = LinearConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: LinearConfig) -> Result<Self> {
        let weight = cfg.init.tensor::<S2<O, I>, E, D>(dev, rng)?;
        // PyTorch draws the bias from U(−1/√fan_in, 1/√fan_in) whatever the
        // weight's initialiser; the course's initialisers set it to zero.
        let bias = if !cfg.bias {
            None
        } else if cfg.init == Init::TorchDefault {
            Some(Init::TorchDefault.tensor_with_fans::<S1<O>, E, D>(dev, rng, &[O, I])?)
        } else {
            Some(Tensor::zeros(dev, 1)?)
        };
        Ok(Linear {
            weight,
            bias,
            lead: PhantomData,
        })
    }
}

impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> Module<E, D>
    for Linear<E, D, I, O, L>
{
    type Grads = LinearGrads<E, D, I, O>;
    fn grads(&self) -> Result<Self::Grads> {
        let dev = self.weight.device();
        Ok(LinearGrads {
            weight: Tensor::zeros(dev, 1)?,
            bias: match self.bias {
                Some(_) => Some(Tensor::zeros(dev, 1)?),
                None => None,
            },
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        f(
            &path.child("weight"),
            ParamRef::of(&self.weight, Role::Param),
        );
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
        f(
            &path.child("weight"),
            ParamMut::of(&mut self.weight, Some(&g.weight)),
        );
        if let (Some(b), Some(gb)) = (&mut self.bias, &g.bias) {
            f(&path.child("bias"), ParamMut::of(b, Some(gb)));
        }
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
        if let Some(b) = &mut self.bias {
            f(&path.child("bias"), ParamMut::of(b, None), Role::Param);
        }
    }
}

impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> Linear<E, D, I, O, L> {
    /// The layer on single rows: each sample of `x` is one row of `I`
    /// (decoding one position at a time, see [`crate::layers::KvCache`]),
    /// `y = x·Wᵀ + b` per row, whatever the leading dimensions `L`.
    pub fn forward_rows(&self, x: &Tensor<S1<I>, E, D>, y: &mut Tensor<S1<O>, E, D>) -> Result<()> {
        y.set_batch(x.batch())?;
        let dev = x.device();
        dev.gemm(
            &Gemm::dense(x.batch(), O, I, false, true),
            &x.buf,
            &self.weight.buf,
            &mut y.buf,
        )?;
        if let Some(bias) = &self.bias {
            dev.add_bias(&mut y.buf, &bias.buf, x.batch(), O)?;
        }
        Ok(())
    }
}

impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> Layer<E, D>
    for Linear<E, D, I, O, L>
{
    type In = L::Shaped<I>;
    type Out = L::Shaped<O>;
    type Cache = ();
    const FLOPS: usize = L::ROWS * I * O;
    fn cache(&self) -> Result<()> {
        Ok(())
    }

    fn forward(
        &self,
        x: &Tensor<L::Shaped<I>, E, D>,
        y: &mut Tensor<L::Shaped<O>, E, D>,
        _: &mut (),
    ) -> Result<()> {
        fit(y, x.batch())?;
        // Every position of every sample is a row.
        let b = x.batch() * L::ROWS;
        let dev = x.device();
        // y[B×O] = x[B×I] · Wᵀ  (W stored [O×I])
        dev.gemm(
            &Gemm::dense(b, O, I, false, true),
            &x.buf,
            &self.weight.buf,
            &mut y.buf,
        )?;
        if let Some(bias) = &self.bias {
            dev.add_bias(&mut y.buf, &bias.buf, b, O)?;
        }
        Ok(())
    }

    fn forward_train(
        &mut self,
        x: &Tensor<L::Shaped<I>, E, D>,
        y: &mut Tensor<L::Shaped<O>, E, D>,
        _cache: &mut (),
        _ctx: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, &mut ())
    }

    fn backward(
        &self,
        x: &Tensor<L::Shaped<I>, E, D>,
        _y: &Tensor<L::Shaped<O>, E, D>,
        _cache: &mut (),
        dy: &Tensor<L::Shaped<O>, E, D>,
        dx: Option<(&mut Tensor<L::Shaped<I>, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let b = x.batch() * L::ROWS;
        let dev = x.device();
        // ∂L/∂W [O×I] = dyᵀ [O×B] · x [B×I]
        dev.gemm(
            &Gemm::dense(O, I, b, true, false).acc(gacc),
            &dy.buf,
            &x.buf,
            &mut grads.weight.buf,
        )?;
        // ∂L/∂b [O] = Σ_rows dy
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
                &self.weight.buf,
                &mut dx.buf,
            )?;
        }
        Ok(())
    }
}

/// The input gradient alone, `∂L/∂x [B×I] = dy [B×O] · W [O×I]`; no
/// weight or bias gradient is computed.
impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead>
    crate::input_grad::InputGrad<E, D> for Linear<E, D, I, O, L>
{
    fn backward_input(
        &self,
        x: &Tensor<L::Shaped<I>, E, D>,
        _y: &Tensor<L::Shaped<O>, E, D>,
        _cache: &mut (),
        dy: &Tensor<L::Shaped<O>, E, D>,
        dx: Option<(&mut Tensor<L::Shaped<I>, E, D>, Acc)>,
        _mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        let Some((dx, acc)) = dx else { return Ok(()) };
        crate::error::check_batch("Linear backward", "x", x.batch(), "dy", dy.batch())?;
        if acc == Acc::Set {
            fit(dx, x.batch())?;
        }
        x.device().gemm(
            &Gemm::dense(x.batch() * L::ROWS, I, O, false, false).acc(acc),
            &dy.buf,
            &self.weight.buf,
            &mut dx.buf,
        )
    }
}

/// ONNX: `Gemm(x, W, b, transB = 1)` on a `[batch, I]` input; with leading
/// dimensions, `MatMul(x, Transpose(W)) + b` (ONNX's `MatMul` broadcasts
/// over them as `nn.Linear` does). `W` and `b` are the initializers
/// `{path}.weight`, `{path}.bias`.
impl<E: Elem, D: Backend<E>, const I: usize, const O: usize, L: Lead> Onnx
    for Linear<E, D, I, O, L>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let w = g.param(&join(at, "weight"), &self.weight)?;
        let b = match &self.bias {
            Some(b) => Some(g.param(&join(at, "bias"), b)?),
            None => None,
        };
        if <L::Shaped<O> as crate::shape::Shape>::RANK == 1 {
            let mut ins = vec![x, w.as_str()];
            ins.extend(b.as_deref());
            return Ok(vec![g.op("Gemm", at, &ins, vec![graph::int("transB", 1)])]);
        }
        let wt = g.op(
            "Transpose",
            &join(at, "weight_t"),
            &[&w],
            vec![graph::ints("perm", &[1, 0])],
        );
        let y = g.op("MatMul", at, &[x, &wt], Vec::new());
        Ok(vec![match b {
            Some(b) => g.op("Add", at, &[&y, &b], Vec::new()),
            None => y,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_layer;
    use crate::Cpu;

    #[test]
    fn forward_is_x_wt_plus_b() {
        let mut l =
            Linear::<f64, Cpu, 2, 3>::build(&Cpu, &mut crate::rng(0), LinearConfig::default())
                .unwrap();
        l.weight.copy_from_slice(&[1., 2., 3., 4., 5., 6.]).unwrap();
        l.bias
            .as_mut()
            .unwrap()
            .copy_from_slice(&[0.1, 0.2, 0.3])
            .unwrap();
        let x = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[1., -1., 2., 0.5]).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        l.forward(&x, &mut y, &mut ()).unwrap();
        let want = [
            1. - 2. + 0.1,
            3. - 4. + 0.2,
            5. - 6. + 0.3,
            2. + 1. + 0.1,
            6. + 2. + 0.2,
            10. + 3. + 0.3,
        ];
        for (a, b) in y.to_vec().unwrap().iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn gradcheck_with_and_without_bias() {
        for bias in [true, false] {
            let mut l = Linear::<f64, Cpu, 5, 4>::build(
                &Cpu,
                &mut crate::rng(3),
                LinearConfig {
                    bias,
                    init: Init::XavierNormal,
                },
            )
            .unwrap();
            let err = check_layer(&mut l, 3, 11).unwrap();
            assert!(err < 1e-6, "bias={bias}: {err}");
        }
    }

    /// On `[T, I]`, each position is the vector layer applied to that row.
    #[test]
    fn sequence_rows_match_the_vector_layer() {
        let v = Linear::<f64, Cpu, 3, 2>::build(&Cpu, &mut crate::rng(5), LinearConfig::default())
            .unwrap();
        let mut s = Linear::<f64, Cpu, 3, 2, S1<4>>::build(
            &Cpu,
            &mut crate::rng(6),
            LinearConfig::default(),
        )
        .unwrap();
        s.weight.assign(&v.weight).unwrap();
        s.bias
            .as_mut()
            .unwrap()
            .assign(v.bias.as_ref().unwrap())
            .unwrap();
        // Two samples of four positions: eight rows.
        let xs: Vec<f64> = (0..24).map(|i| (i as f64 * 0.37).sin()).collect();
        let x = Tensor::<S2<4, 3>, f64>::from_slice(&Cpu, &xs).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        s.forward(&x, &mut y, &mut ()).unwrap();
        assert_eq!(y.batch(), 2);
        let rows = Tensor::<S1<3>, f64>::from_slice(&Cpu, &xs).unwrap();
        let mut yr = Tensor::empty(&Cpu).unwrap();
        v.forward(&rows, &mut yr, &mut ()).unwrap();
        assert_eq!(yr.batch(), 8);
        assert_eq!(y.to_vec().unwrap(), yr.to_vec().unwrap());
        assert_eq!(
            <Linear<f64, Cpu, 3, 2, S1<4>> as Layer<f64, Cpu>>::FLOPS,
            24
        );
    }

    #[test]
    fn gradcheck_on_sequences() {
        let mut l = Linear::<f64, Cpu, 5, 4, S1<3>>::build(
            &Cpu,
            &mut crate::rng(7),
            LinearConfig::default(),
        )
        .unwrap();
        let err = check_layer(&mut l, 2, 12).unwrap();
        assert!(err < 1e-6, "{err}");
        let mut l = Linear::<f64, Cpu, 2, 3, S2<2, 3>>::build(
            &Cpu,
            &mut crate::rng(8),
            LinearConfig {
                bias: false,
                init: Init::XavierNormal,
            },
        )
        .unwrap();
        let err = check_layer(&mut l, 2, 13).unwrap();
        assert!(err < 1e-6, "{err}");
    }
}
