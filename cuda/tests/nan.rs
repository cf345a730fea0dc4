//! NaN and infinity propagate as in PyTorch through every kernel that
//! compares (issue 13): the same literal expectations, written from
//! PyTorch's kernels, are asserted on the CPU and on the CUDA device (the
//! host emulation by default, GPU 0 with `KILN_TEST_GPU=1`), f32 and f64.
//!
//! * `relu(NaN) = NaN`, `relu(∞) = ∞`, `relu(−∞) = 0`; backward
//!   `threshold_backward`: `0 if x ≤ 0 else dy` (a NaN input passes `dy`, a
//!   NaN `dy` is stopped where `x ≤ 0`);
//! * `leaky_relu(NaN) = NaN`; backward `dy·α` at a NaN;
//! * every element-wise function maps NaN to NaN;
//! * PReLU: `y = a·NaN = NaN`, `dx = dy·a`, the weight's gradient NaN;
//! * max pooling: a window holding a NaN gives NaN at the last NaN's index
//!   (`val > maxval || isnan(val)`), `∞` wins as a value, and the backward
//!   routes the gradient to that index;
//! * the RNN's relu cell as ReLU;
//! * attention's masked softmax: a row with a NaN score is all NaN;
//! * every loss of a batch holding one NaN score is NaN: cross-entropy
//!   (whose row maximum is taken with a comparison), MSE, L1, BCE, and the
//!   hinge, where kiln keeps the NaN term that PyTorch's `multi_margin_loss`
//!   skips;
//! * dropout multiplies by its mask (`input * mask / (1 − p)`): a dropped NaN
//!   is NaN, not 0, forward and backward.

use crate::common;

use kiln_core::device::Window2d;
use kiln_core::device::{LossKind, LossTarget};
use kiln_core::kernels::{DropoutKernels, LossKernels, PReluDims, PReluKernels, PoolKernels};
use kiln_core::layers::{AttentionKernels, AttnDims, RnnDims, RnnKernels, RnnNonlinearity};
use kiln_core::{Acc, Act, Backend, Cpu, Elem};
use kiln_cuda::Cuda;

fn cuda() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

fn up<E: Elem, D: Backend<E>>(d: &D, v: &[E]) -> D::Buf<E> {
    let mut b = d.zeros::<E>(v.len()).unwrap();
    d.upload(v, &mut b).unwrap();
    b
}

fn down<E: Elem, D: Backend<E>>(d: &D, b: &D::Buf<E>, n: usize) -> Vec<E> {
    let mut v = vec![E::zero(); n];
    d.download(b, &mut v).unwrap();
    v
}

fn of<E: Elem>(v: &[f64]) -> Vec<E> {
    v.iter().map(|&x| E::of(x)).collect()
}

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

/// `got` equals `want` exactly, NaN where `want` is NaN (and only there);
/// finite values to 1e-6 relative (the emulation's `exp` differs in the
/// last bits).
#[track_caller]
fn same<E: Elem>(what: &str, got: &[E], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g.f64();
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= 1e-6 * (1.0 + w.abs())
        };
        assert!(
            ok,
            "{what} ({}): element {i} is {g}, want {w}\n got {got:?}",
            E::NAME
        );
    }
}

fn activations<E: Elem, D: Backend<E>>(d: &D) {
    let x = up(d, &of::<E>(&[NAN, 1.0, INF, -INF, -1.0, 0.0]));
    let run = |f: Act, dy: &[f64]| {
        let mut y = d.zeros::<E>(6).unwrap();
        d.act_fwd(f, &x, &mut y, 6).unwrap();
        let mut dx = d.zeros::<E>(6).unwrap();
        let g = up(d, &of::<E>(dy));
        d.act_bwd(f, &x, &y, &g, &mut dx, 6, Acc::Set).unwrap();
        (down(d, &y, 6), down(d, &dx, 6))
    };
    let (y, dx) = run(Act::Relu, &[2.0, 2.0, 2.0, 2.0, NAN, INF]);
    same("relu", &y, &[NAN, 1.0, INF, 0.0, 0.0, 0.0]);
    same("relu backward", &dx, &[2.0, 2.0, 2.0, 0.0, 0.0, 0.0]);
    let (y, dx) = run(Act::LeakyRelu(0.25), &[2.0; 6]);
    same("leaky_relu", &y, &[NAN, 1.0, INF, -INF, -0.25, 0.0]);
    same("leaky_relu backward", &dx, &[0.5, 2.0, 2.0, 0.5, 0.5, 0.5]);
    for &f in Act::ALL {
        let (y, dx) = run(f, &[1.0; 6]);
        assert!(y[0].f64().is_nan(), "{f:?}(NaN) = {:?} ({})", y[0], E::NAME);
        if !matches!(
            f,
            Act::Relu | Act::ReluGuided | Act::ReluDeconv | Act::LeakyRelu(_)
        ) {
            // The ReLU family's derivatives are constants (checked above);
            // the others are computed from the NaN.
            assert!(dx[0].f64().is_nan(), "{f:?}'(NaN) = {:?}", dx[0]);
        }
    }
}

fn prelu<E: Elem, D: PReluKernels<E>>(d: &D) {
    let pd = PReluDims {
        batch: 1,
        channels: 2,
        inner: 3,
    };
    let x = up(d, &of::<E>(&[NAN, 1.0, -2.0, INF, -INF, 0.0]));
    let a = up(d, &of::<E>(&[0.5, 0.25]));
    let mut y = d.zeros::<E>(6).unwrap();
    d.prelu_fwd(&pd, &x, &a, &mut y).unwrap();
    same("prelu", &down(d, &y, 6), &[NAN, 1.0, -1.0, INF, -INF, 0.0]);
    let (g, mut dx, mut da) = (
        up(d, &of::<E>(&[1.0; 6])),
        d.zeros::<E>(6).unwrap(),
        d.zeros::<E>(2).unwrap(),
    );
    d.prelu_bwd(
        &pd,
        &x,
        &a,
        &g,
        Some((&mut dx, Acc::Set)),
        &mut da,
        Acc::Set,
    )
    .unwrap();
    same(
        "prelu dx",
        &down(d, &dx, 6),
        &[0.5, 1.0, 0.5, 1.0, 0.25, 0.25],
    );
    same("prelu dweight", &down(d, &da, 2), &[NAN, -INF]);
}

fn max_pool<E: Elem, D: PoolKernels<E>>(d: &D) {
    // One 2×6 plane, 2×2 windows with stride 2: three windows.
    let g = Window2d::new("t", 1, (2, 6), (2, 2), (2, 2), (0, 0), (1, 1)).unwrap();
    #[rustfmt::skip]
    let x = up(d, &of::<E>(&[
        1.0, NAN, 5.0, 3.0, NAN, 1.0,
        2.0, 4.0, INF, 0.0, 2.0, NAN,
    ]));
    let (mut y, mut idx) = (d.zeros::<E>(3).unwrap(), d.zeros::<u32>(3).unwrap());
    d.max_pool2d_fwd(&g, &x, &mut y, &mut idx, 1).unwrap();
    same("max_pool2d", &down(d, &y, 3), &[NAN, INF, NAN]);
    let mut at = vec![0u32; 3];
    d.download(&idx, &mut at).unwrap();
    // The NaN's index; with two NaNs the last (PyTorch's `|| isnan(val)`).
    assert_eq!(at, [1, 8, 11], "max_pool2d indices ({})", E::NAME);
    // Backward: the gradient goes to the NaN's position.
    let dy = up(d, &of::<E>(&[10.0, 20.0, 30.0]));
    let mut dx = d.zeros::<E>(12).unwrap();
    d.max_unpool2d(&g, &idx, &dy, &mut dx, 1, Acc::Set).unwrap();
    let mut want = [0.0; 12];
    (want[1], want[8], want[11]) = (10.0, 20.0, 30.0);
    same("max_pool2d backward", &down(d, &dx, 12), &want);
}

fn rnn_relu<E: Elem, D: RnnKernels<E>>(d: &D) {
    let rd = RnnDims {
        batch: 1,
        steps: 1,
        hidden: 4,
    };
    let f = RnnNonlinearity::Relu;
    let a = up(d, &of::<E>(&[NAN, -1.0, 2.0, INF]));
    let mut h = d.zeros::<E>(4).unwrap();
    d.rnn_cell_fwd(&rd, f, 0, &a, &mut h).unwrap();
    same("rnn relu", &down(d, &h, 4), &[NAN, 0.0, 2.0, INF]);
    let (dy, dh) = (
        up(d, &of::<E>(&[1.0, NAN, 1.0, 1.0])),
        up(d, &of::<E>(&[0.5; 4])),
    );
    let mut da = d.zeros::<E>(4).unwrap();
    d.rnn_cell_bwd(&rd, f, 0, &h, &dy, &dh, &mut da).unwrap();
    same("rnn relu backward", &down(d, &da, 4), &[1.5, 0.0, 1.5, 1.5]);
}

fn attention_softmax<E: Elem, D: AttentionKernels<E>>(d: &D) {
    let ad = AttnDims {
        batch: 1,
        heads: 1,
        queries: 2,
        keys: 3,
        causal: false,
    };
    let mut a = up(d, &of::<E>(&[1.0, NAN, 2.0, 0.0, 0.0, 0.0]));
    d.attn_softmax_fwd(&ad, None, &mut a).unwrap();
    let third = 1.0 / 3.0;
    same(
        "attention softmax",
        &down(d, &a, 6),
        &[NAN, NAN, NAN, third, third, third],
    );
}

fn dropout<E: Elem, D: DropoutKernels<E>>(d: &D) {
    let n = 64;
    let mut v = vec![E::one(); n];
    v.iter_mut().step_by(2).for_each(|x| *x = E::of(NAN));
    let (x, mut y) = (up(d, &v), d.zeros::<E>(n).unwrap());
    d.dropout_fwd(&x, &mut y, n, 0.5, 7).unwrap();
    let y = down(d, &y, n);
    // Every NaN stays NaN, kept or dropped; the ones are 0 or 2, both seen.
    assert!(y.iter().step_by(2).all(|v| v.f64().is_nan()), "{y:?}");
    let ones: Vec<f64> = y.iter().skip(1).step_by(2).map(|v| v.f64()).collect();
    assert!(ones.iter().all(|&v| v == 0.0 || v == 2.0), "{ones:?}");
    assert!(ones.contains(&0.0) && ones.contains(&2.0), "{ones:?}");
    let mut dx = d.zeros::<E>(n).unwrap();
    d.dropout_bwd(&x, &mut dx, n, 0.5, 7, Acc::Set).unwrap();
    let dx = down(d, &dx, n);
    assert!(dx.iter().step_by(2).all(|v| v.f64().is_nan()), "{dx:?}");
}

fn losses<E: Elem, D: LossKernels<E>>(d: &D) {
    let (rows, cols) = (3, 4);
    for at in [0, 5, 11] {
        let mut v: Vec<E> = (0..rows * cols)
            .map(|i| E::of(i as f64 * 0.1 - 0.5))
            .collect();
        v[at] = E::of(NAN);
        let x = up(d, &v);
        let labels = {
            let mut b = d.zeros::<u32>(rows).unwrap();
            d.upload(&[1u32, 0, 3], &mut b).unwrap();
            b
        };
        let dense = up(d, &of::<E>(&[0.5; 12]));
        for kind in [
            LossKind::SoftmaxCrossEntropy,
            LossKind::Hinge { margin: 1.0 },
            LossKind::Mse,
            LossKind::L1,
            LossKind::BceWithLogits,
        ] {
            let t = match kind {
                LossKind::SoftmaxCrossEntropy | LossKind::Hinge { .. } => {
                    LossTarget::Classes(&labels)
                }
                _ => LossTarget::Dense(&dense),
            };
            let mut dx = d.zeros::<E>(rows * cols).unwrap();
            let l = d.loss(kind, &x, t, Some(&mut dx), rows, cols).unwrap();
            assert!(
                l.f64().is_nan(),
                "{kind:?} with a NaN at {at}: {l:?} ({})",
                E::NAME
            );
        }
    }
}

fn all<
    E: Elem,
    D: PReluKernels<E>
        + PoolKernels<E>
        + RnnKernels<E>
        + AttentionKernels<E>
        + DropoutKernels<E>
        + LossKernels<E>,
>(
    d: &D,
) {
    losses::<E, D>(d);
    dropout::<E, D>(d);
    activations::<E, D>(d);
    prelu::<E, D>(d);
    max_pool::<E, D>(d);
    rnn_relu::<E, D>(d);
    attention_softmax::<E, D>(d);
}

#[test]
fn cpu_propagates_nan_as_pytorch() {
    all::<f32, Cpu>(&Cpu);
    all::<f64, Cpu>(&Cpu);
}

#[test]
fn cuda_propagates_nan_as_pytorch() {
    let d = cuda();
    all::<f32, Cuda>(&d);
    all::<f64, Cuda>(&d);
}
