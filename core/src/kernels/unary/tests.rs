//! The table's values against literals and finite differences, the
//! loops against the scalar formulas, NaN and infinity rules, the CUDA
//! source, and the wide loops against the baseline ones.

use super::*;
use crate::simd::testing::{at_baseline_width, bits};

/// Values that exercise every branch: both signs, tiny and huge
/// magnitudes, the clamps of `exp_f32`/`erf_f32`, zeros, infinities, NaN.
fn awkward<E: Elem>(n: usize, seed: u64) -> Vec<E> {
    let special = [
        0.0, -0.0, 1e-30, -1e-30, 3.9, -4.1, 87.0, -88.0, 100.0, -100.0, 1e30,
    ];
    let mut r = crate::rng(seed);
    (0..n)
        .map(|i| {
            E::of(match i % 17 {
                0..=10 => special[i % 17],
                11 => f64::INFINITY,
                12 => f64::NEG_INFINITY,
                13 => f64::NAN,
                _ => rand::Rng::random_range(&mut r, -6.0..6.0),
            })
        })
        .collect()
}

fn same_bits<E: Elem>(a: &[E], b: &[E]) -> bool {
    bits(a) == bits(b)
}

/// The wide paths (`map`, `map_grad`, `bias_map_rows` through
/// `crate::simd::wide`) give the baseline loops' values bit for bit, for
/// every function, in f32 and f64, on lengths with vector remainders.
fn wide_is_bitwise<E: Elem>() {
    use crate::device::Acc;
    let n = 16 * 37 + 5;
    let (x, y0, dy) = (awkward::<E>(n, 1), awkward::<E>(n, 2), awkward::<E>(n, 3));
    for &f in Act::ALL {
        let (mut a, mut b) = (vec![E::zero(); n], vec![E::zero(); n]);
        f.map(&x, &mut a);
        at_baseline_width(|| f.map(&x, &mut b));
        assert!(same_bits(&a, &b), "{f:?} map");
        for acc in [Acc::Set, Acc::Add] {
            let (mut a, mut b) = (y0.clone(), y0.clone());
            f.map_grad(&x, &y0, &dy, &mut a, acc);
            at_baseline_width(|| f.map_grad(&x, &y0, &dy, &mut b, acc));
            assert!(same_bits(&a, &b), "{f:?} map_grad {acc:?}");
        }
        let cols = 37;
        let bias = awkward::<E>(cols, 4);
        for with_bias in [true, false] {
            let bb = with_bias.then_some(&bias[..]);
            let (mut pa, mut ya) = (x[..16 * cols].to_vec(), vec![E::zero(); 16 * cols]);
            let (mut pb, mut yb) = (pa.clone(), ya.clone());
            f.bias_map_rows(bb, pa.chunks_mut(cols).zip(ya.chunks_mut(cols)));
            at_baseline_width(|| f.bias_map_rows(bb, pb.chunks_mut(cols).zip(yb.chunks_mut(cols))));
            assert!(
                same_bits(&pa, &pb) && same_bits(&ya, &yb),
                "{f:?} bias_map_rows"
            );
        }
    }
}

#[test]
fn wide_loops_give_the_baseline_values() {
    let w = crate::simd::width();
    if w == crate::gemm::Isa::Portable {
        eprintln!(
            "SKIPPED: this CPU has neither AVX2 nor AVX-512F: the wide loops are the baseline ones"
        );
    }
    wide_is_bitwise::<f32>();
    wide_is_bitwise::<f64>();
}

/// Literal values of `f` and `f'` at three points, computed in f64 with
/// Python's `math` module (`erf`, `tanh`, `exp`) from PyTorch's documented
/// formulas (`nn.GELU`, `nn.GELU(approximate='tanh')`, …), independently
/// of this table.
#[test]
fn literal_values_of_f_and_df() {
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12 * (1.0 + b.abs());
    let xs = [-1.5f64, 0.3, 2.0];
    // (function, f at xs, f' at xs)
    let table: [(Act, [f64; 3], [f64; 3]); 6] = [
        (Act::Relu, [0.0, 0.3, 2.0], [0.0, 1.0, 1.0]),
        (Act::LeakyRelu(0.1), [-0.15, 0.3, 2.0], [0.1, 1.0, 1.0]),
        (
            Act::Sigmoid,
            [0.18242552380635635, 0.574442516811659, 0.8807970779778823],
            [
                0.14914645207033286,
                0.24445831169074586,
                0.10499358540350662,
            ],
        ),
        (
            Act::Tanh,
            [-0.9051482536448664, 0.2913126124515909, 0.9640275800758169],
            [0.18070663892364858, 0.9151369618266292, 0.07065082485316443],
        ),
        (
            Act::Gelu,
            [
                -0.10021080190328713,
                0.18537342665668577,
                1.9544997361036416,
            ],
            [-0.12746919222997954, 0.7323277668271098, 1.085231801078197],
        ),
        (
            Act::GeluTanh,
            [-0.10042842301976707, 0.18537092354275922, 1.954597694087775],
            [-0.1277107931514331, 0.7322954516388018, 1.0860992566236183],
        ),
    ];
    for (f, ys, ds) in table {
        for i in 0..3 {
            let y = f.f(xs[i]);
            assert!(
                close(y, ys[i]),
                "{f:?}({}) = {y}, expected {}",
                xs[i],
                ys[i]
            );
            let d = f.df(xs[i], y);
            assert!(
                close(d, ds[i]),
                "{f:?}'({}) = {d}, expected {}",
                xs[i],
                ds[i]
            );
        }
    }
}

/// `df` agrees with central differences of `f` in f64 for every entry of
/// the table (away from ReLU's kink), so a wrong derivative cannot be
/// declared.
#[test]
fn df_matches_finite_differences() {
    for &f in Act::ALL {
        for i in -40..=40 {
            let x = i as f64 * 0.1 + 0.013;
            let h = 1e-5;
            let num = (f.f(x + h) - f.f(x - h)) / (2.0 * h);
            let d = f.df(x, f.f(x));
            assert!(
                (d - num).abs() < 1e-8,
                "{f:?} at {x}: df {d}, numeric {num}"
            );
        }
    }
}

/// The vectorised loops compute exactly what the scalar formulas do.
#[test]
fn loops_match_the_scalar_formulas() {
    use crate::device::Acc;
    let x: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.21).collect();
    for &f in Act::ALL {
        let mut y = vec![0.0f32; x.len()];
        f.map(&x, &mut y);
        let dy: Vec<f32> = (0..37).map(|i| 1.0 + i as f32 * 0.01).collect();
        let mut dx = vec![0.5f32; x.len()];
        f.map_grad(&x, &y, &dy, &mut dx, Acc::Add);
        for i in 0..x.len() {
            assert_eq!(y[i], f.f(x[i]));
            assert_eq!(dx[i], 0.5 + f.grad(dy[i], x[i], y[i]));
            if !matches!(f, Act::ReluDeconv) {
                assert_eq!(dx[i], 0.5 + dy[i] * f.df(x[i], y[i]));
            }
        }
    }
}

/// Guided backpropagation's and the deconvnet's ReLU backward at the
/// four sign combinations of input and gradient: guided passes `g` only
/// where `x > 0` and `g > 0`, the deconvnet wherever `g > 0`, plain
/// ReLU wherever `x > 0`.
#[test]
fn guided_and_deconvnet_relu_backward() {
    use crate::device::Acc;
    let x = [2.0f64, 2.0, -1.0, -1.0, 0.0, 3.0];
    let g = [0.5f64, -0.7, 0.5, -0.7, 0.9, 0.0];
    let y: Vec<f64> = x.iter().map(|&v| Act::Relu.f(v)).collect();
    let run = |f: Act| {
        let mut dx = [9.0f64; 6];
        f.map_grad(&x, &y, &g, &mut dx, Acc::Set);
        dx
    };
    assert_eq!(run(Act::Relu), [0.5, -0.7, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(run(Act::ReluGuided), [0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(run(Act::ReluDeconv), [0.5, 0.0, 0.5, 0.0, 0.9, 0.0]);
    for i in 0..6 {
        assert_eq!(Act::ReluGuided.f(x[i]), y[i]);
        assert_eq!(Act::ReluDeconv.f(x[i]), y[i]);
    }
}

/// NaN in, NaN out for every function, through the scalar formulas and
/// the vectorised loops; the ReLU family's infinities and NaN gradients
/// as PyTorch's (`relu(∞) = ∞`, `relu(−∞) = 0`, `threshold_backward`
/// passes `dy` where the input is NaN, `leaky_relu_backward` gives
/// `α·dy` there).
#[test]
fn nan_and_infinity_follow_pytorch() {
    use crate::device::Acc;
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    let x = [nan, 1.0, inf, -inf, -1.0, 0.0];
    for &f in Act::ALL.iter().chain(&[Act::LeakyRelu(0.3)]) {
        let mut y = [0.0f32; 6];
        f.map(&x, &mut y);
        assert!(f.f(nan).is_nan() && y[0].is_nan(), "{f:?}(NaN) = {}", y[0]);
        assert!(y[1..].iter().all(|v| !v.is_nan()) || f.name().starts_with("gelu"));
    }
    let fwd = |f: Act| {
        let mut y = [0.0f32; 6];
        f.map(&x, &mut y);
        y
    };
    let y = fwd(Act::Relu);
    assert!(y[0].is_nan());
    assert_eq!(y[1..], [1.0, inf, 0.0, 0.0, 0.0]);
    let y = fwd(Act::LeakyRelu(0.25));
    assert!(y[0].is_nan());
    assert_eq!(y[1..], [1.0, inf, -inf, -0.25, 0.0]);
    let grad = |f: Act| {
        let (mut y, mut dx) = ([0.0f32; 6], [0.0f32; 6]);
        f.map(&x, &mut y);
        f.map_grad(&x, &y, &[2.0; 6], &mut dx, Acc::Set);
        dx
    };
    assert_eq!(grad(Act::Relu), [2.0, 2.0, 2.0, 0.0, 0.0, 0.0]);
    assert_eq!(grad(Act::LeakyRelu(0.25)), [0.5, 2.0, 2.0, 0.5, 0.5, 0.5]);
    // A NaN or infinite gradient arriving passes an open ReLU gate and is
    // stopped by a shut one (a select, not `dy·0 = NaN`), as PyTorch's
    // `threshold_backward`; LeakyReLU multiplies, as `leaky_relu_backward`.
    let mut dx = [0.0f32; 4];
    let (xs, dys) = ([1.0, -1.0, 0.0, -1.0], [nan, nan, inf, inf]);
    Act::Relu.map_grad(&xs, &[1.0, 0.0, 0.0, 0.0], &dys, &mut dx, Acc::Set);
    assert!(dx[0].is_nan());
    assert_eq!(dx[1..], [0.0, 0.0, 0.0]);
    assert!(Act::Relu.grad(nan, -1.0f32, 0.0) == 0.0);
    let mut dx = [0.0f32; 4];
    Act::LeakyRelu(0.5).map_grad(&xs, &[1.0, -0.5, 0.0, -0.5], &dys, &mut dx, Acc::Set);
    assert!(dx[0].is_nan() && dx[1].is_nan());
    assert_eq!(dx[2..], [inf, inf]);
}

#[test]
fn cuda_source_is_generated_from_the_table() {
    assert!(CUDA_SOURCE.contains("KILN_UNARY(relu, x, f32, float)"));
    assert!(CUDA_SOURCE.contains("KILN_UNARY(sigmoid, y, f64, double)"));
    assert!(CUDA_SOURCE.contains("gelu_tanh_f(T x, T a)"));
    assert_eq!(NAMES.len(), Act::ALL.len());
    for (n, f) in NAMES.iter().zip(Act::ALL) {
        assert_eq!(*n, f.name());
    }
}
