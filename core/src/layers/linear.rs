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
use super::Elementwise;
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
        x.device().gemm_bias_act(
            &Gemm::dense(x.batch(), O, I, false, true),
            &x.buf,
            &self.weight.buf,
            &mut y.buf,
            self.bias.as_ref().map(|b| &b.buf),
            None,
        )
    }

    /// The layer followed by the element-wise activation `act`, in one pass:
    /// `pre = x·Wᵀ + b`, `y = f(pre)`, with the bias and `f` applied as the
    /// product's epilogue ([`Backend::gemm_bias_act`]: on the CPU to each
    /// tile of the product while it is in L1, on CUDA in one kernel). `pre`
    /// is the layer's own output (what [`Layer::forward`] writes, and what
    /// the backward pass reads for `f'`); `y` the activation's. The values
    /// are bitwise those of [`Layer::forward`] followed by the activation's.
    /// `network!` emits this call for a `Linear` whose only consumer is an
    /// activation.
    pub fn forward_act<A: Elementwise>(
        &self,
        act: &A,
        x: &Tensor<L::Shaped<I>, E, D>,
        pre: &mut Tensor<L::Shaped<O>, E, D>,
        y: &mut Tensor<L::Shaped<O>, E, D>,
    ) -> Result<()> {
        fit(pre, x.batch())?;
        fit(y, x.batch())?;
        x.device().gemm_bias_act(
            &Gemm::dense(x.batch() * L::ROWS, O, I, false, true),
            &x.buf,
            &self.weight.buf,
            &mut pre.buf,
            self.bias.as_ref().map(|b| &b.buf),
            Some((act.act(), &mut y.buf)),
        )
    }

    /// The backward pass of [`Linear::forward_act`], from `dy = ∂L/∂y` at
    /// the activation's output:
    ///
    /// * `∂L/∂pre = dy · f'(pre or y)` into `dpre` (the gradient arriving at
    ///   the layer's own output), and with a bias `∂L/∂b (gacc)= Σ_rows
    ///   ∂L/∂pre` in the same call ([`Backend::bias_act_bwd`]: one pass on
    ///   CUDA, the activation's then the bias's on the CPU);
    /// * then `∂L/∂W` and `∂L/∂x` as [`Layer::backward`] from `∂L/∂pre`.
    ///
    /// The values are bitwise those of the activation's backward followed by
    /// the layer's.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)] // Layer::backward's operands plus the activation's tensors
    pub fn backward_act<A: Elementwise>(
        &self,
        act: &A,
        x: &Tensor<L::Shaped<I>, E, D>,
        pre: &Tensor<L::Shaped<O>, E, D>,
        y: &Tensor<L::Shaped<O>, E, D>,
        dy: &Tensor<L::Shaped<O>, E, D>,
        dpre: &mut Tensor<L::Shaped<O>, E, D>,
        dx: Option<(&mut Tensor<L::Shaped<I>, E, D>, Acc)>,
        // `LinearGrads<E, D, I, O>`, written as the projection so that a
        // caller whose `where` clause bounds the layer by `Layer` (the
        // generated networks) passes its gradients unchanged.
        grads: &mut <Self as Module<E, D>>::Grads,
        gacc: Acc,
    ) -> Result<()> {
        crate::error::check_batch("Linear backward", "pre", pre.batch(), "dy", dy.batch())?;
        fit(dpre, pre.batch())?;
        let b = x.batch() * L::ROWS;
        let dev = x.device();
        let f = act.act();
        match &mut grads.bias {
            Some(gb) => dev.bias_act_bwd(
                f,
                &pre.buf,
                &y.buf,
                &dy.buf,
                &mut dpre.buf,
                &mut gb.buf,
                b,
                O,
                gacc,
            )?,
            None => dev.act_bwd(f, &pre.buf, &y.buf, &dy.buf, &mut dpre.buf, b * O, Acc::Set)?,
        }
        // ∂L/∂W [O×I] = dpreᵀ [O×B] · x [B×I]
        dev.gemm(
            &Gemm::dense(O, I, b, true, false).acc(gacc),
            &dpre.buf,
            &x.buf,
            &mut grads.weight.buf,
        )?;
        // ∂L/∂x [B×I] = dpre [B×O] · W [O×I]
        if let Some((dx, acc)) = dx {
            if acc == Acc::Set {
                fit(dx, x.batch())?;
            }
            dev.gemm(
                &Gemm::dense(b, I, O, false, false).acc(acc),
                &dpre.buf,
                &self.weight.buf,
                &mut dx.buf,
            )?;
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
        // y[B×O] = x[B×I] · Wᵀ  (W stored [O×I]), the bias added as the
        // product's epilogue.
        x.device().gemm_bias_act(
            &Gemm::dense(b, O, I, false, true),
            &x.buf,
            &self.weight.buf,
            &mut y.buf,
            self.bias.as_ref().map(|b| &b.buf),
            None,
        )
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

    /// `forward_act` and `backward_act` give bitwise the values of the layer
    /// followed by the activation, one pass each (forward and backward), for
    /// each function, with and without a bias, on a batch large enough for
    /// the product's blocked, threaded path.
    #[test]
    fn fused_activation_is_bitwise_the_two_layers() {
        use crate::layers::{Gelu, LeakyRelu, Relu, Sigmoid};
        fn run<
            A: Elementwise + Layer<f32, Cpu, In = S1<70>, Out = S1<70>, Cache = (), Grads = ()>,
        >(
            act: A,
            bias: bool,
        ) {
            let mut l = Linear::<f32, Cpu, 130, 70>::build(
                &Cpu,
                &mut crate::rng(9),
                LinearConfig {
                    bias,
                    init: Init::XavierNormal,
                },
            )
            .unwrap();
            if let Some(b) = &mut l.bias {
                let v: Vec<f32> = (0..70).map(|i| ((i as f32) * 0.7).sin() * 0.3).collect();
                b.copy_from_slice(&v).unwrap();
            }
            let batch = 67;
            let xs: Vec<f32> = (0..batch * 130)
                .map(|i| ((i as f32) * 0.113).sin())
                .collect();
            let x = Tensor::<S1<130>, f32>::from_slice(&Cpu, &xs).unwrap();
            let dys: Vec<f32> = (0..batch * 70)
                .map(|i| ((i as f32) * 0.291).cos())
                .collect();
            let dy = Tensor::<S1<70>, f32>::from_slice(&Cpu, &dys).unwrap();
            // Separately.
            let (mut pre0, mut y0) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
            l.forward(&x, &mut pre0, &mut ()).unwrap();
            act.forward(&pre0, &mut y0, &mut ()).unwrap();
            let (mut dpre0, mut dx0) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
            act.backward(
                &pre0,
                &y0,
                &mut (),
                &dy,
                Some((&mut dpre0, Acc::Set)),
                &mut (),
                Acc::Set,
            )
            .unwrap();
            let mut g0 = l.grads().unwrap();
            l.backward(
                &x,
                &pre0,
                &mut (),
                &dpre0,
                Some((&mut dx0, Acc::Set)),
                &mut g0,
                Acc::Set,
            )
            .unwrap();
            // Fused.
            let (mut pre1, mut y1) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
            l.forward_act(&act, &x, &mut pre1, &mut y1).unwrap();
            let (mut dpre1, mut dx1) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
            let mut g1 = l.grads().unwrap();
            l.backward_act(
                &act,
                &x,
                &pre1,
                &y1,
                &dy,
                &mut dpre1,
                Some((&mut dx1, Acc::Set)),
                &mut g1,
                Acc::Set,
            )
            .unwrap();
            let bits = |t: &Vec<f32>| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let what = format!("{:?} bias {bias}", act.act());
            for (name, a, b) in [
                ("pre", pre1.to_vec(), pre0.to_vec()),
                ("y", y1.to_vec(), y0.to_vec()),
                ("dpre", dpre1.to_vec(), dpre0.to_vec()),
                ("dx", dx1.to_vec(), dx0.to_vec()),
                ("dW", g1.weight.to_vec(), g0.weight.to_vec()),
            ] {
                assert_eq!(bits(&a.unwrap()), bits(&b.unwrap()), "{name}, {what}");
            }
            if bias {
                let (a, b) = (g1.bias.unwrap().to_vec(), g0.bias.unwrap().to_vec());
                assert_eq!(bits(&a.unwrap()), bits(&b.unwrap()), "db, {what}");
            }
        }
        for bias in [true, false] {
            run(Relu::default(), bias);
            run(LeakyRelu::new(0.2), bias);
            run(Gelu::default(), bias);
            run(Sigmoid::default(), bias);
        }
    }

    /// The fused pair's gradients against central finite differences in
    /// `f64`, for `L = Σ r ⊙ f(x·Wᵀ + b)` with fixed random `r`: `∂L/∂W`,
    /// `∂L/∂b` and `∂L/∂x` from `backward_act`.
    #[test]
    fn fused_activation_gradcheck() {
        use crate::layers::{Gelu, LeakyRelu, Sigmoid};
        fn run<A: Elementwise>(act: A) {
            let mut l =
                Linear::<f64, Cpu, 4, 3>::build(&Cpu, &mut crate::rng(2), LinearConfig::default())
                    .unwrap();
            let batch = 2;
            let xs: Vec<f64> = (0..batch * 4)
                .map(|i| ((i as f64) * 0.71 + 0.2).sin())
                .collect();
            let rs: Vec<f64> = (0..batch * 3).map(|i| ((i as f64) * 1.3).cos()).collect();
            let loss = |l: &Linear<f64, Cpu, 4, 3>, xs: &[f64]| -> f64 {
                let x = Tensor::<S1<4>, f64>::from_slice(&Cpu, xs).unwrap();
                let (mut pre, mut y) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
                l.forward_act(&act, &x, &mut pre, &mut y).unwrap();
                y.to_vec()
                    .unwrap()
                    .iter()
                    .zip(&rs)
                    .map(|(a, b)| a * b)
                    .sum()
            };
            let x = Tensor::<S1<4>, f64>::from_slice(&Cpu, &xs).unwrap();
            let (mut pre, mut y) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
            l.forward_act(&act, &x, &mut pre, &mut y).unwrap();
            let dy = Tensor::<S1<3>, f64>::from_slice(&Cpu, &rs).unwrap();
            let (mut dpre, mut dx) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
            let mut g = l.grads().unwrap();
            l.backward_act(
                &act,
                &x,
                &pre,
                &y,
                &dy,
                &mut dpre,
                Some((&mut dx, Acc::Set)),
                &mut g,
                Acc::Set,
            )
            .unwrap();
            let h = 1e-6;
            let close = |num: f64, ana: f64, what: &str| {
                assert!(
                    (num - ana).abs() < 1e-7 * (1.0 + ana.abs()),
                    "{:?} {what}: {num} vs {ana}",
                    act.act()
                );
            };
            let w0 = l.weight.to_vec().unwrap();
            let dw = g.weight.to_vec().unwrap();
            for i in 0..w0.len() {
                let mut w = w0.clone();
                w[i] += h;
                l.weight.copy_from_slice(&w).unwrap();
                let up = loss(&l, &xs);
                w[i] -= 2.0 * h;
                l.weight.copy_from_slice(&w).unwrap();
                let down = loss(&l, &xs);
                close((up - down) / (2.0 * h), dw[i], &format!("dW[{i}]"));
            }
            l.weight.copy_from_slice(&w0).unwrap();
            let b0 = l.bias.as_ref().unwrap().to_vec().unwrap();
            let db = g.bias.as_ref().unwrap().to_vec().unwrap();
            for i in 0..b0.len() {
                let mut b = b0.clone();
                b[i] += h;
                l.bias.as_mut().unwrap().copy_from_slice(&b).unwrap();
                let up = loss(&l, &xs);
                b[i] -= 2.0 * h;
                l.bias.as_mut().unwrap().copy_from_slice(&b).unwrap();
                let down = loss(&l, &xs);
                close((up - down) / (2.0 * h), db[i], &format!("db[{i}]"));
            }
            l.bias.as_mut().unwrap().copy_from_slice(&b0).unwrap();
            let dxv = dx.to_vec().unwrap();
            for i in 0..xs.len() {
                let mut x = xs.clone();
                x[i] += h;
                let up = loss(&l, &x);
                x[i] -= 2.0 * h;
                let down = loss(&l, &x);
                close((up - down) / (2.0 * h), dxv[i], &format!("dx[{i}]"));
            }
        }
        run(LeakyRelu::<S1<3>>::new(0.1));
        run(Gelu::<S1<3>>::default());
        run(Sigmoid::<S1<3>>::default());
    }
}
