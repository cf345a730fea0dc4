//! Tests of a [`Recurrent`] stack's state: the gradients of a pass from a
//! given initial state and through its final state against central
//! differences (parameters, input and state), a sequence split in two with
//! the state carried equal to the whole, and truncated backpropagation: the
//! carried state is an input, so the second half's gradients are those of
//! its own loss with the state held fixed and differ from full BPTT's.

use super::*;
use crate::layers::{Gru, GruConfig, Lstm, LstmConfig, RecurrentConfig, Rnn, RnnConfig};
use crate::module::{Build, Path};
use crate::shape::{S2, S3};
use crate::testing::{numeric_grad, numeric_grad_small, random_input, rel_err2};
use crate::Cpu;

type R<L0, LU, O, const L: usize, const DIRS: usize> = Recurrent<f64, Cpu, L0, LU, O, L, DIRS>;

/// Every parameter value, in visiting order.
fn params<M: Module<f64, Cpu>>(m: &mut M) -> Vec<Vec<f64>> {
    let mut v = Vec::new();
    m.visit_mut(&Path::ROOT, &mut |_, p, _| v.push(p.value.to_vec()));
    v
}

fn set_param<M: Module<f64, Cpu>>(m: &mut M, k: usize, val: &[f64]) {
    let mut i = 0;
    m.visit_mut(&Path::ROOT, &mut |_, p, _| {
        if i == k {
            p.value.copy_from_slice(val);
        }
        i += 1;
    });
}

/// `Σ y⊙r + Σ state_final⊙q` from the initial state `s` (a training pass),
/// its gradients by the layer, and by central differences with respect to
/// every parameter, the input and the initial state; returns the worst
/// relative error.
fn check<L0, LU, O, S, const L: usize, const DIRS: usize>(
    net: &mut R<L0, LU, O, L, DIRS>,
    batch: usize,
    seed: u64,
) -> f64
where
    L0: RecurrentCell<f64, Cpu>,
    LU: RecurrentCell<f64, Cpu>,
    O: Shape,
    S: Shape,
{
    let mut rng = crate::rng(seed);
    let xv = random_input(batch * L0::In::NUMEL, &mut rng);
    let sv = random_input(batch * S::NUMEL, &mut rng);
    let rv = random_input(batch * O::NUMEL, &mut rng);
    let qv = random_input(batch * S::NUMEL, &mut rng);
    let t = |v: &[f64]| Tensor::<L0::In, f64>::from_slice(&Cpu, v).unwrap();
    let ts = |v: &[f64]| Tensor::<S, f64>::from_slice(&Cpu, v).unwrap();
    let (r, q) = (Tensor::<O, f64>::from_slice(&Cpu, &rv).unwrap(), ts(&qv));
    let mut cache = net.cache().unwrap();
    let loss = |net: &mut R<L0, LU, O, L, DIRS>, xv: &[f64], sv: &[f64], cache: &mut _| {
        let (mut y, mut fin) = (
            Tensor::empty(&Cpu).unwrap(),
            Tensor::<S, f64>::empty(&Cpu).unwrap(),
        );
        let mut ctx = TrainCtx::new(seed);
        net.forward_train_from(&t(xv), Some(&ts(sv)), &mut y, cache, &mut ctx)
            .unwrap();
        net.final_state(cache, &mut fin).unwrap();
        let dot = |a: Vec<f64>, b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
        dot(y.to_vec().unwrap(), &rv) + dot(fin.to_vec().unwrap(), &qv)
    };
    // Analytic.
    let (x, s) = (t(&xv), ts(&sv));
    let (mut y, mut fin) = (
        Tensor::empty(&Cpu).unwrap(),
        Tensor::<S, f64>::empty(&Cpu).unwrap(),
    );
    net.forward_train_from(&x, Some(&s), &mut y, &mut cache, &mut TrainCtx::new(seed))
        .unwrap();
    net.final_state(&cache, &mut fin).unwrap();
    net.final_state_backward(&mut cache, &q).unwrap();
    let (mut dx, mut ds, mut grads) = (
        Tensor::empty(&Cpu).unwrap(),
        Tensor::<S, f64>::empty(&Cpu).unwrap(),
        net.grads().unwrap(),
    );
    net.backward_from(
        &x,
        &y,
        &mut cache,
        &r,
        Some((&mut dx, Acc::Set)),
        Some((&mut ds, Acc::Set)),
        &mut grads,
        Acc::Set,
    )
    .unwrap();
    let mut analytic = Vec::new();
    net.visit_grads(&grads, &Path::ROOT, &mut |_, p| {
        analytic.push(p.grad.unwrap()[..p.numel].to_vec())
    });
    let mut worst = 0.0f64;
    // Parameters.
    for (k, p0) in params(net).into_iter().enumerate() {
        let mut f = |v: &[f64]| {
            set_param(net, k, v);
            loss(net, &xv, &sv, &mut cache)
        };
        let (n1, n2) = (numeric_grad(&p0, &mut f), numeric_grad_small(&p0, &mut f));
        f(&p0);
        worst = worst.max(rel_err2(&analytic[k], &n1, &n2));
    }
    // The input and the initial state.
    let mut fx = |v: &[f64]| loss(net, v, &sv, &mut cache);
    let (n1, n2) = (numeric_grad(&xv, &mut fx), numeric_grad_small(&xv, &mut fx));
    worst = worst.max(rel_err2(&dx.to_vec().unwrap(), &n1, &n2));
    let mut fs = |v: &[f64]| loss(net, &xv, v, &mut cache);
    let (n1, n2) = (numeric_grad(&sv, &mut fs), numeric_grad_small(&sv, &mut fs));
    let e = rel_err2(&ds.to_vec().unwrap(), &n1, &n2);
    worst.max(e)
}

fn cfg<C>(cell: C) -> RecurrentConfig<C> {
    RecurrentConfig { cell, dropout: 0.0 }
}

#[test]
fn gradients_through_both_ends_of_the_state() {
    type BiLstm = R<Lstm<f64, Cpu, 3, 2, 3, 12>, Lstm<f64, Cpu, 3, 6, 3, 12>, S2<3, 6>, 2, 2>;
    let mut l = BiLstm::build(&Cpu, &mut crate::rng(1), cfg(LstmConfig::default())).unwrap();
    assert_eq!(BiLstm::state_shape(), [2, 4, 3]);
    let e = check::<_, _, _, S3<2, 4, 3>, 2, 2>(&mut l, 2, 2);
    assert!(e < 1e-6, "LSTM, 2 layers, bidirectional: {e:e}");

    type Gru2 = R<Gru<f64, Cpu, 4, 2, 3, 9>, Gru<f64, Cpu, 4, 3, 3, 9>, S2<4, 3>, 2, 1>;
    let mut g = Gru2::build(&Cpu, &mut crate::rng(3), cfg(GruConfig::default())).unwrap();
    assert_eq!(Gru2::state_shape(), [2, 3]);
    let e = check::<_, _, _, S2<2, 3>, 2, 1>(&mut g, 3, 4);
    assert!(e < 1e-6, "GRU, 2 layers: {e:e}");

    type BiRnn = R<Rnn<f64, Cpu, 1, 2, 4>, Rnn<f64, Cpu, 1, 8, 4>, S2<1, 8>, 1, 2>;
    let mut r = BiRnn::build(&Cpu, &mut crate::rng(5), cfg(RnnConfig::default())).unwrap();
    let e = check::<_, _, _, S2<2, 4>, 1, 2>(&mut r, 2, 6);
    assert!(e < 1e-6, "RNN, one step, bidirectional: {e:e}");
}

#[test]
fn a_state_of_the_wrong_shape_is_an_error_naming_both() {
    type Lstm2 = R<Lstm<f64, Cpu, 3, 2, 3, 12>, Lstm<f64, Cpu, 3, 3, 3, 12>, S2<3, 3>, 2, 1>;
    let l = Lstm2::build(&Cpu, &mut crate::rng(1), cfg(LstmConfig::default())).unwrap();
    let x = Tensor::<S2<3, 2>, f64>::from_slice(&Cpu, &[0.5; 6]).unwrap();
    let s = Tensor::<S2<2, 3>, f64>::from_slice(&Cpu, &[0.5; 6]).unwrap();
    let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
    let e = l
        .forward_from(&x, Some(&s), &mut y, &mut c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 2, 3]") && e.contains("[2, 3]"), "{e}");
    // Asking for the gradient of a state the pass did not start from.
    l.forward_from::<S3<2, 2, 3>>(&x, None, &mut y, &mut c)
        .unwrap();
    let (mut g, mut ds) = (
        l.grads().unwrap(),
        Tensor::<S3<2, 2, 3>, f64>::empty(&Cpu).unwrap(),
    );
    let dy = Tensor::<S2<3, 3>, f64>::from_slice(&Cpu, &y.to_vec().unwrap()).unwrap();
    let e = l
        .backward_from(
            &x,
            &y,
            &mut c,
            &dy,
            None,
            Some((&mut ds, Acc::Set)),
            &mut g,
            Acc::Set,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("zero state"), "{e}");
}

/// Two halves with the final state of the first carried into the second
/// give the whole sequence's outputs; the second half's gradients with the
/// carried state held fixed (truncated BPTT) are its own loss's, and differ
/// from those of full backpropagation through both halves.
#[test]
fn carried_state_continues_the_sequence_and_truncates_the_gradient() {
    type Whole = R<Lstm<f64, Cpu, 6, 2, 3, 12>, Lstm<f64, Cpu, 6, 3, 3, 12>, S2<6, 3>, 2, 1>;
    type Half = R<Lstm<f64, Cpu, 3, 2, 3, 12>, Lstm<f64, Cpu, 3, 3, 3, 12>, S2<3, 3>, 2, 1>;
    type St = S3<2, 2, 3>;
    let whole = Whole::build(&Cpu, &mut crate::rng(7), cfg(LstmConfig::default())).unwrap();
    let mut half = Half::build(&Cpu, &mut crate::rng(7), cfg(LstmConfig::default())).unwrap();
    let batch = 2;
    let xv = random_input(batch * 12, &mut crate::rng(8));
    let x = Tensor::<S2<6, 2>, f64>::from_slice(&Cpu, &xv).unwrap();
    let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), whole.cache().unwrap());
    whole.forward(&x, &mut y, &mut c).unwrap();
    let y = y.to_vec().unwrap();
    let part = |h: usize| -> Vec<f64> {
        (0..batch)
            .flat_map(|b| xv[(b * 6 + 3 * h) * 2..][..6].to_vec())
            .collect()
    };
    let (x1, x2) = (
        Tensor::<S2<3, 2>, f64>::from_slice(&Cpu, &part(0)).unwrap(),
        Tensor::<S2<3, 2>, f64>::from_slice(&Cpu, &part(1)).unwrap(),
    );
    let (mut y1, mut c1, mut s) = (
        Tensor::empty(&Cpu).unwrap(),
        half.cache().unwrap(),
        Tensor::<St, f64>::empty(&Cpu).unwrap(),
    );
    half.forward_from::<St>(&x1, None, &mut y1, &mut c1)
        .unwrap();
    half.final_state(&c1, &mut s).unwrap();
    let (mut y2, mut c2) = (Tensor::empty(&Cpu).unwrap(), half.cache().unwrap());
    half.forward_from(&x2, Some(&s), &mut y2, &mut c2).unwrap();
    let (y1, y2) = (y1.to_vec().unwrap(), y2.to_vec().unwrap());
    for b in 0..batch {
        for t in 0..6 {
            let got = if t < 3 {
                &y1[(b * 3 + t) * 3..][..3]
            } else {
                &y2[(b * 3 + t - 3) * 3..][..3]
            };
            for (g, w) in got.iter().zip(&y[(b * 6 + t) * 3..][..3]) {
                assert!((g - w).abs() < 1e-14, "b {b} t {t}: {g} vs {w}");
            }
        }
    }

    // The second half's loss Σ y2⊙r: its gradient with the state fixed ...
    let rv = random_input(batch * 9, &mut crate::rng(9));
    let r = Tensor::<S2<3, 3>, f64>::from_slice(&Cpu, &rv).unwrap();
    let mut g = half.grads().unwrap();
    let y2t = Tensor::<S2<3, 3>, f64>::from_slice(&Cpu, &y2).unwrap();
    half.backward_from::<St>(&x2, &y2t, &mut c2, &r, None, None, &mut g, Acc::Set)
        .unwrap();
    let mut trunc = Vec::new();
    half.visit_grads(&g, &Path::ROOT, &mut |_, p| {
        trunc.push(p.grad.unwrap()[..p.numel].to_vec())
    });
    let mut worst = 0.0f64;
    for (k, p0) in params(&mut half).into_iter().enumerate() {
        let mut f = |v: &[f64]| {
            set_param(&mut half, k, v);
            let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), half.cache().unwrap());
            half.forward_from(&x2, Some(&s), &mut y, &mut c).unwrap();
            y.to_vec()
                .unwrap()
                .iter()
                .zip(&rv)
                .map(|(a, b)| a * b)
                .sum()
        };
        let (n1, n2) = (numeric_grad(&p0, &mut f), numeric_grad_small(&p0, &mut f));
        f(&p0);
        worst = worst.max(rel_err2(&trunc[k], &n1, &n2));
    }
    assert!(
        worst < 1e-6,
        "truncated gradient vs the fixed-state loss: {worst:e}"
    );

    // ... is not full BPTT's: the same loss on the whole sequence (r on
    // its second half) sends gradient into the first half's steps too.
    let mut rw = vec![0.0; batch * 18];
    for b in 0..batch {
        rw[(b * 6 + 3) * 3..][..9].copy_from_slice(&rv[b * 9..][..9]);
    }
    let rw = Tensor::<S2<6, 3>, f64>::from_slice(&Cpu, &rw).unwrap();
    let (mut yw, mut cw, mut gw) = (
        Tensor::empty(&Cpu).unwrap(),
        whole.cache().unwrap(),
        whole.grads().unwrap(),
    );
    whole.forward(&x, &mut yw, &mut cw).unwrap();
    whole
        .backward(&x, &yw, &mut cw, &rw, None, &mut gw, Acc::Set)
        .unwrap();
    let mut full = Vec::new();
    let mut whole = whole;
    whole.visit_grads(&gw, &Path::ROOT, &mut |_, p| {
        full.push(p.grad.unwrap()[..p.numel].to_vec())
    });
    // W_ih of layer 0: full BPTT differs from the truncated gradient.
    let diff: f64 = full[0]
        .iter()
        .zip(&trunc[0])
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(diff > 1e-3, "full and truncated gradients agree: {diff}");
}
