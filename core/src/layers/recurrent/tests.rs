//! Tests of [`Recurrent`](super::Recurrent): gradient checks of each cell
//! stacked and bidirectional, and the layer's shapes and names.

use super::*;
use crate::layers::{Gru, GruConfig, Lstm, LstmConfig, Rnn, RnnConfig, RnnNonlinearity};
use crate::shape::{S1, S2};
use crate::testing::{check_layer, random_input};
use crate::Cpu;

type BiLstm =
    Recurrent<f64, Cpu, Lstm<f64, Cpu, 3, 2, 3, 12>, Lstm<f64, Cpu, 3, 6, 3, 12>, S2<3, 6>, 2, 2>;

fn cfg<C>(cell: C, dropout: f64) -> RecurrentConfig<C> {
    RecurrentConfig { cell, dropout }
}

#[test]
fn names_in_pytorchs_order() {
    let l = BiLstm::build(&Cpu, &mut crate::rng(0), cfg(LstmConfig::default(), 0.0)).unwrap();
    let mut seen = Vec::new();
    l.visit(&Path::ROOT.child("rnn"), &mut |p, r| {
        seen.push(format!("{p} {:?}", r.dims))
    });
    let want: Vec<String> = [("l0", 2), ("l0_reverse", 2), ("l1", 6), ("l1_reverse", 6)]
        .iter()
        .flat_map(|(s, i)| {
            [
                format!("rnn.weight_ih_{s} [12, {i}]"),
                format!("rnn.weight_hh_{s} [12, 3]"),
                format!("rnn.bias_ih_{s} [12]"),
                format!("rnn.bias_hh_{s} [12]"),
            ]
        })
        .collect();
    assert_eq!(seen, want);
    // A size the macro would not write: layer 1 reading 3 features.
    type Bad = Recurrent<
        f64,
        Cpu,
        Lstm<f64, Cpu, 3, 2, 3, 12>,
        Lstm<f64, Cpu, 3, 3, 3, 12>,
        S2<3, 6>,
        2,
        2,
    >;
    let e = Bad::build(&Cpu, &mut crate::rng(0), cfg(LstmConfig::default(), 0.0));
    assert!(e.err().unwrap().to_string().contains("DIRS·H"));
}

/// The reverse direction is the forward cell run on the reversed
/// sequence, its outputs put back in place; `last` picks
/// `[→h_{T−1} | ←h_0]`.
#[test]
fn reverse_direction_and_last_state() {
    type One =
        Recurrent<f64, Cpu, Gru<f64, Cpu, 4, 2, 3, 9>, Gru<f64, Cpu, 4, 6, 3, 9>, S2<4, 6>, 1, 2>;
    type Last =
        Recurrent<f64, Cpu, Gru<f64, Cpu, 4, 2, 3, 9>, Gru<f64, Cpu, 4, 6, 3, 9>, S1<6>, 1, 2>;
    let l = One::build(&Cpu, &mut crate::rng(3), cfg(GruConfig::default(), 0.0)).unwrap();
    let last = Last::build(&Cpu, &mut crate::rng(3), cfg(GruConfig::default(), 0.0)).unwrap();
    let xv = random_input(2 * 8, &mut crate::rng(4));
    let x = Tensor::<S2<4, 2>, f64>::from_slice(&Cpu, &xv).unwrap();
    let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
    l.forward(&x, &mut y, &mut c).unwrap();
    let y = y.to_vec().unwrap();
    let mut xr = xv.clone();
    for b in 0..2 {
        for t in 0..4 {
            xr[(b * 4 + t) * 2..][..2].copy_from_slice(&xv[(b * 4 + 3 - t) * 2..][..2]);
        }
    }
    let xr = Tensor::<S2<4, 2>, f64>::from_slice(&Cpu, &xr).unwrap();
    let (mut yr, mut cr) = (Tensor::empty(&Cpu).unwrap(), l.first[1].cache().unwrap());
    l.first[1].forward(&xr, &mut yr, &mut cr).unwrap();
    let yr = yr.to_vec().unwrap();
    for b in 0..2 {
        for t in 0..4 {
            let got = &y[(b * 4 + t) * 6 + 3..][..3];
            assert_eq!(got, &yr[(b * 4 + 3 - t) * 3..][..3]);
        }
    }
    let (mut yl, mut cl) = (Tensor::empty(&Cpu).unwrap(), last.cache().unwrap());
    last.forward(&x, &mut yl, &mut cl).unwrap();
    let yl = yl.to_vec().unwrap();
    for b in 0..2 {
        assert_eq!(&yl[b * 6..][..3], &y[(b * 4 + 3) * 6..][..3]);
        assert_eq!(&yl[b * 6 + 3..][..3], &y[b * 4 * 6 + 3..][..3]);
    }
}

#[test]
fn gradchecks_stacked_bidirectional() {
    let mut a = BiLstm::build(&Cpu, &mut crate::rng(5), cfg(LstmConfig::default(), 0.0)).unwrap();
    assert!(check_layer(&mut a, 2, 1).unwrap() < 1e-6);
    // With dropout between the layers (the same mask for every difference).
    let mut a = BiLstm::build(&Cpu, &mut crate::rng(5), cfg(LstmConfig::default(), 0.3)).unwrap();
    assert!(check_layer(&mut a, 2, 1).unwrap() < 1e-6);
    type G = Recurrent<f64, Cpu, Gru<f64, Cpu, 4, 3, 2, 6>, Gru<f64, Cpu, 4, 4, 2, 6>, S1<4>, 3, 2>;
    let mut g = G::build(&Cpu, &mut crate::rng(6), cfg(GruConfig::default(), 0.0)).unwrap();
    assert!(check_layer(&mut g, 2, 2).unwrap() < 1e-6);
    type R = Recurrent<f64, Cpu, Rnn<f64, Cpu, 4, 3, 3>, Rnn<f64, Cpu, 4, 6, 3>, S2<4, 6>, 2, 2>;
    for nonlinearity in [RnnNonlinearity::Tanh, RnnNonlinearity::Relu] {
        let c = RnnConfig {
            bias: true,
            nonlinearity,
        };
        let mut r = R::build(&Cpu, &mut crate::rng(7), cfg(c, 0.0)).unwrap();
        assert!(check_layer(&mut r, 3, 3).unwrap() < 1e-6);
    }
    type U =
        Recurrent<f64, Cpu, Lstm<f64, Cpu, 3, 2, 3, 12>, Lstm<f64, Cpu, 3, 3, 3, 12>, S1<3>, 2, 1>;
    let mut u = U::build(
        &Cpu,
        &mut crate::rng(8),
        cfg(LstmConfig { bias: false }, 0.0),
    )
    .unwrap();
    assert!(check_layer(&mut u, 2, 4).unwrap() < 1e-6);
}

/// One cache through batches of 3, 2 and 3 sequences gives each pass the
/// gradients of a fresh cache (the shifted `h_{t−1}` buffer of the one-GEMM
/// `∂L/∂W_hh`, and the packed `W_hh`, follow the batch size), for each cell.
#[test]
fn a_cache_reused_across_batch_sizes_gives_fresh_gradients() {
    /// The outputs and every parameter gradient of one pass.
    fn run<L: Layer<f64, Cpu>>(
        l: &mut L,
        cache: &mut L::Cache,
        batch: usize,
        seed: u64,
    ) -> Vec<f64> {
        let mut r = crate::rng(seed);
        let x = Tensor::<L::In, f64>::from_slice(&Cpu, &random_input(batch * L::In::NUMEL, &mut r))
            .unwrap();
        let dy =
            Tensor::<L::Out, f64>::from_slice(&Cpu, &random_input(batch * L::Out::NUMEL, &mut r))
                .unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        l.forward(&x, &mut y, cache).unwrap();
        let mut g = l.grads().unwrap();
        l.backward(&x, &y, cache, &dy, None, &mut g, Acc::Set)
            .unwrap();
        let mut all = y.to_vec().unwrap();
        l.visit_grads(&g, &Path::ROOT, &mut |_, p| {
            all.extend_from_slice(&p.grad.unwrap()[..p.numel])
        });
        all
    }
    fn check<L: Layer<f64, Cpu> + Build<f64, Cpu>>()
    where
        L::Config: Default,
    {
        let mut l = L::build(&Cpu, &mut crate::rng(4), Default::default()).unwrap();
        let mut shared = l.cache().unwrap();
        for (batch, seed) in [(3, 1), (2, 2), (3, 3)] {
            let reused = run(&mut l, &mut shared, batch, seed);
            let mut fresh_cache = l.cache().unwrap();
            let fresh = run(&mut l, &mut fresh_cache, batch, seed);
            assert_eq!(reused, fresh, "batch {batch}");
            assert!(reused.iter().any(|v| v.abs() > 1e-3));
        }
    }
    check::<Lstm<f64, Cpu, 4, 3, 2, 8>>();
    check::<Gru<f64, Cpu, 4, 3, 2, 6>>();
    check::<Rnn<f64, Cpu, 4, 3, 2>>();
}
