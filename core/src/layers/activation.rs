//! Element-wise activations. Each keeps the shape of its input.
//!
//! | layer | forward | backward `∂L/∂x` | reads |
//! |---|---|---|---|
//! | [`Relu`] | `max(x, 0)`, `relu(NaN) = NaN` | `0 if x ≤ 0 else ∂L/∂y` (the course's mask, as a select) | input |
//! | [`LeakyRelu`] | `x` if `x > 0` else `αx` (NaN kept) | `∂L/∂y · (1 if x > 0 else α)` | input |
//! | [`Sigmoid`] | `σ(x) = 1/(1 + e^{−x})` | `∂L/∂y · y(1 − y)` | output |
//! | [`Tanh`] | `tanh x` | `∂L/∂y · (1 − y²)` | output |
//! | [`Gelu`] | `x·Φ(x) = ½x(1 + erf(x/√2))` | `∂L/∂y · (Φ(x) + x·φ(x))`, `φ(x) = e^{−x²/2}/√(2π)` | input |
//! | [`Gelu`] (`tanh`) | `½x(1 + tanh u)`, `u = √(2/π)(x + 0.044715x³)` | `∂L/∂y · (½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²))` | input |
//!
//! The formulas live once, in [`crate::Act`], and every device implements
//! them from there. At `x = 0` ReLU's derivative is taken as 0, as PyTorch does.
//! NaN propagates as in PyTorch: every activation maps NaN to NaN (so an
//! all-NaN batch gives a NaN loss, the non-finite-loss error, not a finite
//! one), and a NaN gradient is stopped only where ReLU's gate is shut.
//! Sigmoid is evaluated in a form that never overflows (`e^{x}/(1+e^{x})` for
//! negative `x`). No cache: the tape already holds both `x` and `y`.
//!
//! # Shapes
//! Any `S`: input and output are `S`.

use super::fit;
use crate::device::{Acc, Act, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::module::{Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::marker::PhantomData;

/// Implements [`Module`] for a layer without parameters.
macro_rules! no_params {
    ($ty:ident < $($g:ident),* >) => {
        impl<E: Elem, D: Backend<E>, $($g: $crate::shape::Shape),*> Module<E, D> for $ty<$($g),*> {
            type Grads = ();
            fn grads(&self) -> Result<()> {
                Ok(())
            }
            fn visit(&self, _: &Path<'_>, _: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {}
            fn visit_grads(&mut self, _: &(), _: &Path<'_>, _: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>)) {}
            fn visit_mut(&mut self, _: &Path<'_>, _: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role)) {}
        }
    };
}
pub(crate) use no_params;

/// Shared forward/backward of all element-wise activations.
fn act_forward<S: Shape, E: Elem, D: Backend<E>>(
    f: Act,
    x: &Tensor<S, E, D>,
    y: &mut Tensor<S, E, D>,
) -> Result<()> {
    fit(y, x.batch())?;
    x.device().act_fwd(f, &x.buf, &mut y.buf, x.numel())
}

fn act_backward<S: Shape, E: Elem, D: Backend<E>>(
    f: Act,
    x: &Tensor<S, E, D>,
    y: &Tensor<S, E, D>,
    dy: &Tensor<S, E, D>,
    dx: Option<(&mut Tensor<S, E, D>, Acc)>,
) -> Result<()> {
    if let Some((dx, acc)) = dx {
        if acc == Acc::Set {
            fit(dx, x.batch())?;
        }
        x.device()
            .act_bwd(f, &x.buf, &y.buf, &dy.buf, &mut dx.buf, x.numel(), acc)?;
    }
    Ok(())
}

/// The ONNX nodes of `f` applied to `x`: `Relu`, `LeakyRelu(alpha)`,
/// `Sigmoid`, `Tanh` as they are; GELU (an operator only from opset 20) as
/// its formula, `½x(1 + erf(x/√2))` with `Erf`, or
/// `½x(1 + tanh(√(2/π)(x + 0.044715x³)))` with `Tanh`.
pub(crate) fn act_onnx(f: Act, g: &mut Graph, at: &str, x: &str) -> Result<String> {
    Ok(match f {
        // The guided and deconvnet rules change only ReLU's backward.
        Act::Relu | Act::ReluGuided | Act::ReluDeconv => g.op("Relu", at, &[x], Vec::new()),
        Act::Sigmoid => g.op("Sigmoid", at, &[x], Vec::new()),
        Act::Tanh => g.op("Tanh", at, &[x], Vec::new()),
        Act::LeakyRelu(a) => g.op("LeakyRelu", at, &[x], vec![graph::float("alpha", a)]),
        Act::Gelu => {
            let c = g.scalar(&join(at, "inv_sqrt2"), std::f64::consts::FRAC_1_SQRT_2)?;
            let u = g.op("Mul", at, &[x, &c], Vec::new());
            let e = g.op("Erf", at, &[&u], Vec::new());
            gelu_tail(g, at, x, &e)?
        }
        Act::GeluTanh => {
            let k = g.scalar(&join(at, "k"), 0.044715)?;
            let s = g.scalar(
                &join(at, "sqrt_2_over_pi"),
                (2.0 / std::f64::consts::PI).sqrt(),
            )?;
            let x2 = g.op("Mul", at, &[x, x], Vec::new());
            let x3 = g.op("Mul", at, &[&x2, x], Vec::new());
            let kx3 = g.op("Mul", at, &[&x3, &k], Vec::new());
            let inner = g.op("Add", at, &[x, &kx3], Vec::new());
            let u = g.op("Mul", at, &[&inner, &s], Vec::new());
            let t = g.op("Tanh", at, &[&u], Vec::new());
            gelu_tail(g, at, x, &t)?
        }
    })
}

/// `½x(1 + t)`, the end of both GELU forms.
fn gelu_tail(g: &mut Graph, at: &str, x: &str, t: &str) -> Result<String> {
    let one = g.scalar(&join(at, "one"), 1.0)?;
    let half = g.scalar(&join(at, "half"), 0.5)?;
    let p = g.op("Add", at, &[t, &one], Vec::new());
    let hx = g.op("Mul", at, &[x, &half], Vec::new());
    Ok(g.op("Mul", at, &[&hx, &p], Vec::new()))
}

/// An element-wise activation layer, by the function of the table it
/// applies: what a preceding dense layer fuses into its product's epilogue
/// ([`crate::layers::Linear::forward_act`]; `network!` emits the fused call
/// for a `Linear` whose only consumer is one of these).
pub trait Elementwise {
    /// The layer's function.
    fn act(&self) -> Act;
}

/// Declares a parameter-free element-wise layer `$name<S>` whose function is `$act`.
macro_rules! elementwise_layer {
    ($(#[$m:meta])* $name:ident $({ $($field:ident : $fty:ty),* })?, |$self_:ident| $act:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name<S> {
            $($(#[allow(missing_docs)] pub $field: $fty,)*)?
            _s: PhantomData<S>,
        }
        no_params!($name<S>);
        impl<S> Elementwise for $name<S> {
            fn act(&self) -> Act {
                let $self_ = self;
                $act
            }
        }
        impl<S: Shape> Onnx for $name<S> {
            fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
                let $self_ = self;
                Ok(vec![act_onnx($act, g, at, single(at, inputs)?)?])
            }
        }
        impl<E: Elem, D: Backend<E>, S: Shape> Layer<E, D> for $name<S> {
            type In = S;
            type Out = S;
            type Cache = ();
            const FLOPS: usize = S::NUMEL;
            fn cache(&self) -> Result<()> {
                Ok(())
            }
            fn forward(&self, x: &Tensor<S, E, D>, y: &mut Tensor<S, E, D>, _: &mut ()) -> Result<()> {
                let $self_ = self;
                act_forward($act, x, y)
            }
            fn forward_train(&mut self, x: &Tensor<S, E, D>, y: &mut Tensor<S, E, D>, _: &mut (), _: &mut TrainCtx) -> Result<()> {
                self.forward(x, y, &mut ())
            }
            fn backward(
                &self,
                x: &Tensor<S, E, D>,
                y: &Tensor<S, E, D>,
                _: &mut (),
                dy: &Tensor<S, E, D>,
                dx: Option<(&mut Tensor<S, E, D>, Acc)>,
                _: &mut (),
                _: Acc,
            ) -> Result<()> {
                let $self_ = self;
                act_backward($act, x, y, dy, dx)
            }
        }
    };
}

elementwise_layer!(
    /// `max(x, 0)`, keeping NaN as PyTorch (`relu(NaN) = NaN`); backward
    /// `0 if x ≤ 0 else ∂L/∂y` (PyTorch's `threshold_backward`: a NaN input
    /// passes the gradient).
    Relu, |_s| Act::Relu
);
/// Guided backpropagation and the deconvnet are rules for ReLU alone (see
/// [`crate::input_grad`]): with `x` the input and `g = ∂L/∂y`,
/// `Plain`: `g·[x > 0]`; `Guided`: `g·[x > 0]·[g > 0]`; `Deconvnet`:
/// `g·[g > 0]`, each one kernel of the element-wise table
/// ([`Act::Relu`], [`Act::ReluGuided`], [`Act::ReluDeconv`]).
impl<E: Elem, D: Backend<E>, S: Shape> crate::input_grad::InputGrad<E, D> for Relu<S> {
    fn backward_input(
        &self,
        x: &Tensor<S, E, D>,
        y: &Tensor<S, E, D>,
        _: &mut (),
        dy: &Tensor<S, E, D>,
        dx: Option<(&mut Tensor<S, E, D>, Acc)>,
        mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        use crate::input_grad::GradMode;
        let f = match mode {
            GradMode::Plain => Act::Relu,
            GradMode::Guided => Act::ReluGuided,
            GradMode::Deconvnet => Act::ReluDeconv,
        };
        act_backward(f, x, y, dy, dx)
    }
}

elementwise_layer!(
    /// `σ(x)`.
    Sigmoid, |_s| Act::Sigmoid
);
elementwise_layer!(
    /// `tanh x`.
    Tanh, |_s| Act::Tanh
);
elementwise_layer!(
    /// `x` for positive `x`, else `αx` (PyTorch's default α = 0.01).
    LeakyRelu { alpha: f64 }, |s| Act::LeakyRelu(s.alpha)
);

elementwise_layer!(
    /// GELU, PyTorch's `nn.GELU()`: the exact `x·Φ(x)` (default), or with
    /// `tanh = true` its `approximate='tanh'` form (GPT-2's). See the table above.
    Gelu { tanh: bool }, |s| if s.tanh { Act::GeluTanh } else { Act::Gelu }
);

impl<S> Gelu<S> {
    /// `nn.GELU(approximate='tanh')`.
    pub fn approximate_tanh() -> Self {
        Gelu {
            tanh: true,
            _s: PhantomData,
        }
    }

    /// PyTorch's `nn.GELU(approximate=…)`: `"none"` (the exact erf form) or
    /// `"tanh"`; any other string is an error naming it.
    pub fn new(approximate: &str) -> Result<Self> {
        let tanh = match approximate {
            "none" => false,
            "tanh" => true,
            other => {
                return Err(Error::invalid(
                    "Gelu",
                    format!("approximate must be \"none\" or \"tanh\", got {other:?}"),
                ))
            }
        };
        Ok(Gelu {
            tanh,
            _s: PhantomData,
        })
    }
}

impl<S> LeakyRelu<S> {
    /// A leaky ReLU with negative slope `alpha`.
    pub fn new(alpha: f64) -> Self {
        LeakyRelu {
            alpha,
            _s: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::S2;
    use crate::testing::check_layer;
    use crate::Cpu;

    fn run<L: Layer<f64, Cpu, In = S2<1, 4>, Out = S2<1, 4>, Cache = ()>>(
        l: &L,
        x: [f64; 4],
    ) -> Vec<f64> {
        let x = Tensor::<S2<1, 4>, f64>::from_slice(&Cpu, &x).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        l.forward(&x, &mut y, &mut ()).unwrap();
        y.to_vec().unwrap()
    }

    #[test]
    fn values() {
        let x = [-2.0, -0.5, 0.0, 3.0];
        assert_eq!(
            run(&Relu::<S2<1, 4>>::default(), x),
            vec![0.0, 0.0, 0.0, 3.0]
        );
        assert_eq!(
            run(&LeakyRelu::<S2<1, 4>>::new(0.1), x),
            vec![-0.2, -0.05, 0.0, 3.0]
        );
        let s = run(&Sigmoid::<S2<1, 4>>::default(), x);
        assert!((s[2] - 0.5).abs() < 1e-15 && (s[3] - 0.9525741268224334).abs() < 1e-15);
        let t = run(&Tanh::<S2<1, 4>>::default(), x);
        assert!((t[0] + 0.9640275800758169).abs() < 1e-15);
        // No overflow far out.
        let s = run(
            &Sigmoid::<S2<1, 4>>::default(),
            [-800.0, 800.0, -40.0, 40.0],
        );
        assert!(s.iter().all(|v| v.is_finite()) && s[0] == 0.0 && s[1] == 1.0);
    }

    #[test]
    fn gradchecks() {
        assert!(check_layer(&mut Relu::<S2<3, 4>>::default(), 4, 1).unwrap() < 1e-6);
        assert!(check_layer(&mut LeakyRelu::<S2<3, 4>>::new(0.2), 4, 2).unwrap() < 1e-6);
        assert!(check_layer(&mut Sigmoid::<S2<3, 4>>::default(), 4, 3).unwrap() < 1e-6);
        assert!(check_layer(&mut Tanh::<S2<3, 4>>::default(), 4, 4).unwrap() < 1e-6);
        assert!(check_layer(&mut Gelu::<S2<3, 4>>::default(), 4, 5).unwrap() < 1e-6);
        let mut g = Gelu::<S2<3, 4>>::new("tanh").unwrap();
        assert!(check_layer(&mut g, 4, 6).unwrap() < 1e-6);
    }

    #[test]
    fn gelu_values() {
        let x = [-2.0, -0.5, 0.0, 3.0];
        // x·Φ(x) (scipy.stats.norm.cdf): Φ(−2) = 0.022750131948179195,
        // Φ(−0.5) = 0.3085375387259869, Φ(3) = 0.9986501019683699.
        let want = [
            -0.04550026389635842,
            -0.15426876936299344,
            0.0,
            2.99595030590511,
        ];
        let got = run(&Gelu::<S2<1, 4>>::default(), x);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?}");
        }
        // ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
        let want = [
            -0.04540230591222494,
            -0.15428599017485606,
            0.0,
            2.996362607918227,
        ];
        let got = run(&Gelu::<S2<1, 4>>::new("tanh").unwrap(), x);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?}");
        }
        let e = Gelu::<S2<1, 4>>::new("erf").unwrap_err().to_string();
        assert!(e.contains("Gelu") && e.contains("\"erf\""), "{e}");
    }
}
