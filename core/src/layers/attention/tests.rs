//! The tests of [`MultiHeadAttention`](super::MultiHeadAttention): values by
//! hand, masked weights and gradients exactly zero, a fully masked row, the
//! causal property, and f64 gradient checks with and without masks.

use super::*;
use crate::testing::{check_layer, numeric_grad, numeric_grad_small, random_input, rel_err2};
use crate::Cpu;

type Mha<const T: usize, const S: usize, const DM: usize, const H: usize, const QKV: usize> =
    MultiHeadAttention<f64, Cpu, T, S, DM, H, QKV>;

fn build<const T: usize, const S: usize, const DM: usize, const H: usize, const QKV: usize>(
    seed: u64,
    bias: bool,
    causal: bool,
) -> Mha<T, S, DM, H, QKV> {
    let cfg = MultiHeadAttentionConfig {
        bias,
        causal,
        ..Default::default()
    };
    let mut l = Mha::build(&Cpu, &mut crate::rng(seed), cfg).unwrap();
    if let Some(b) = &mut l.in_proj_bias {
        // Non-zero biases, so their gradients are checked too.
        let v = random_input(QKV, &mut crate::rng(seed + 100));
        b.copy_from_slice(&v).unwrap();
    }
    l
}

/// DM = H = 1, every weight 1, no biases: `y_i = Σ_j softmax_j(x_i·x_j)·x_j`.
/// x = (0, 1): query 0 sees scores (0, 0), y₀ = ½; query 1 sees (0, 1),
/// y₁ = e/(1 + e). Causal: y₀ = x₀ = 0, y₁ unchanged.
#[test]
fn values_by_hand() {
    for causal in [false, true] {
        let mut l = build::<2, 2, 1, 1, 3>(0, false, causal);
        l.in_proj_weight.copy_from_slice(&[1.0; 3]).unwrap();
        l.out_proj.weight.copy_from_slice(&[1.0]).unwrap();
        let x = Tensor::<S2<2, 1>, f64>::from_slice(&Cpu, &[0.0, 1.0]).unwrap();
        let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
        l.forward(&x, &mut y, &mut c).unwrap();
        let y = y.to_vec().unwrap();
        let e = std::f64::consts::E;
        assert_eq!(y[0], if causal { 0.0 } else { 0.5 });
        assert!((y[1] - e / (1.0 + e)).abs() < 1e-15, "{y:?}");
    }
}

#[test]
fn names_shapes_and_init() {
    let l = build::<3, 3, 8, 2, 24>(0, true, false);
    let mut seen = Vec::new();
    l.visit(&Path::ROOT.child("attn"), &mut |p, r| {
        seen.push(format!("{p} {:?}", r.dims))
    });
    assert_eq!(
        seen,
        [
            "attn.in_proj_weight [24, 8]",
            "attn.in_proj_bias [24]",
            "attn.out_proj.weight [8, 8]",
            "attn.out_proj.bias [8]"
        ]
    );
    let l = Mha::<3, 3, 8, 2, 24>::build(&Cpu, &mut crate::rng(0), Default::default()).unwrap();
    let a = (6.0f64 / 32.0).sqrt(); // Xavier: √(6/(fan_in + fan_out)), fans 8 and 24
    let w = l.in_proj_weight.to_vec().unwrap();
    assert!(w.iter().all(|v| v.abs() <= a) && w.iter().any(|v| v.abs() > 0.8 * a));
    assert!(l
        .in_proj_bias
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .all(|v| *v == 0.0));
    assert!(l
        .out_proj
        .bias
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .all(|v| *v == 0.0));
    let bad = MultiHeadAttention::<f64, Cpu, 3, 3, 8, 3, 24>::build(
        &Cpu,
        &mut crate::rng(0),
        Default::default(),
    );
    assert!(bad.is_err());
}

/// Cross-attention over 4 keys, the last two padding in sample 0 and all
/// four in sample 1: the weights of padded keys are exactly 0, sample 1's
/// rows are all 0 (so its outputs are `out_proj.bias`), and padded memory
/// positions get exactly zero gradient.
#[test]
fn padded_keys_get_zero_weight_and_gradient() {
    let l = build::<3, 4, 4, 2, 12>(3, true, false);
    let xv = random_input(2 * 12, &mut crate::rng(4));
    let mv = random_input(2 * 16, &mut crate::rng(5));
    let x = Tensor::<S2<3, 4>, f64>::from_slice(&Cpu, &xv).unwrap();
    let m = Tensor::<S2<4, 4>, f64>::from_slice(&Cpu, &mv).unwrap();
    let ids = Tokens::<S1<4>, 5>::new::<f64>(&Cpu, &[3, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    let (mut y, mut c) = (
        Tensor::empty(&Cpu).unwrap(),
        AttentionCache::new(&Cpu).unwrap(),
    );
    l.cross_attend(&x, &m, Some(KeyPadding::new(&ids, 0)), &mut y, &mut c)
        .unwrap();
    let p = l.attention_weights(&c).unwrap();
    for (r, row) in p.chunks(4).enumerate() {
        let s: f64 = row.iter().sum();
        if r < 6 {
            assert!(
                (s - 1.0).abs() < 1e-15 && row[2] == 0.0 && row[3] == 0.0,
                "{row:?}"
            );
        } else {
            assert_eq!(row, [0.0; 4], "a fully masked row is zeros, not NaN");
        }
    }
    let b = l.out_proj.bias.as_ref().unwrap().to_vec().unwrap();
    assert_eq!(
        y.to_vec().unwrap()[12..],
        [b.clone(), b.clone(), b].concat()
    );
    let dy =
        Tensor::<S2<3, 4>, f64>::from_slice(&Cpu, &random_input(24, &mut crate::rng(6))).unwrap();
    let (mut dx, mut dm, mut g) = (
        Tensor::empty(&Cpu).unwrap(),
        Tensor::empty(&Cpu).unwrap(),
        l.grads().unwrap(),
    );
    l.cross_attend_backward(
        &x,
        &m,
        &mut c,
        &dy,
        Some((&mut dx, Acc::Set)),
        Some((&mut dm, Acc::Set)),
        &mut g,
        Acc::Set,
    )
    .unwrap();
    let dm = dm.to_vec().unwrap();
    assert!(dm[8..].iter().all(|v| *v == 0.0), "{dm:?}");
    assert!(dm[..8].iter().all(|v| *v != 0.0));
    assert!(dx.to_vec().unwrap()[12..].iter().all(|v| *v == 0.0));
}

/// Perturbing a future token changes neither the earlier outputs nor, with
/// the loss on the earlier outputs only, any gradient: the future positions'
/// input gradients stay exactly 0.
#[test]
fn causal_future_tokens_do_not_leak() {
    let l = build::<5, 5, 4, 2, 12>(7, true, true);
    let mut xv = random_input(20, &mut crate::rng(8));
    let mut dyv = random_input(20, &mut crate::rng(9));
    dyv[12..].iter_mut().for_each(|v| *v = 0.0); // loss on positions 0..3
    let run = |xv: &[f64]| {
        let x = Tensor::<S2<5, 4>, f64>::from_slice(&Cpu, xv).unwrap();
        let dy = Tensor::<S2<5, 4>, f64>::from_slice(&Cpu, &dyv).unwrap();
        let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
        l.forward(&x, &mut y, &mut c).unwrap();
        let (mut dx, mut g) = (Tensor::empty(&Cpu).unwrap(), l.grads().unwrap());
        l.backward(
            &x,
            &y,
            &mut c,
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut g,
            Acc::Set,
        )
        .unwrap();
        let w = g.in_proj_weight.to_vec().unwrap();
        (y.to_vec().unwrap(), dx.to_vec().unwrap(), w)
    };
    let (y0, dx0, w0) = run(&xv);
    xv[13] += 0.7; // position 3
    xv[18] -= 1.1; // position 4
    let (y1, dx1, w1) = run(&xv);
    assert_eq!(y0[..12], y1[..12]);
    assert_ne!(y0[12..], y1[12..]);
    assert_eq!(dx0[..12], dx1[..12]);
    assert!(dx1[12..].iter().all(|v| *v == 0.0), "{dx1:?}");
    assert_eq!(w0, w1);
}

#[test]
fn gradchecks_self_attention() {
    for (seed, bias, causal) in [
        (1, true, false),
        (2, true, true),
        (3, false, true),
        (4, false, false),
    ] {
        let mut a = build::<4, 4, 6, 3, 18>(seed, bias, causal);
        let e = check_layer(&mut a, 2, seed).unwrap();
        assert!(e < 1e-6, "bias {bias}, causal {causal}: {e}");
    }
    let mut one = build::<1, 1, 4, 1, 12>(5, true, true);
    let e = check_layer(&mut one, 3, 5).unwrap();
    assert!(e < 1e-6, "one position: {e}");
}

/// The loss `Σ y⊙r` of cross-attention and its gradients by central
/// differences, for `x`, the memory and `in_proj_weight` (the other
/// parameters are checked by the self-attention gradcheck).
#[test]
fn gradchecks_cross_attention_with_masks() {
    for (causal, ids) in [
        (false, [1u32, 2, 0, 3, 0, 0, 4, 0, 0, 0]),
        (true, [0u32, 1, 2, 3, 4, 1, 1, 1, 1, 1]),
    ] {
        let mut l = build::<3, 5, 4, 2, 12>(11, true, causal);
        let mut rng = crate::rng(12);
        let (xv, mv, rv) = (
            random_input(24, &mut rng),
            random_input(40, &mut rng),
            random_input(24, &mut rng),
        );
        let ids = Tokens::<S1<5>, 5>::new::<f64>(&Cpu, &ids).unwrap();
        let loss = |l: &Mha<3, 5, 4, 2, 12>, xv: &[f64], mv: &[f64]| -> f64 {
            let x = Tensor::<S2<3, 4>, f64>::from_slice(&Cpu, xv).unwrap();
            let m = Tensor::<S2<5, 4>, f64>::from_slice(&Cpu, mv).unwrap();
            let (mut y, mut c) = (
                Tensor::empty(&Cpu).unwrap(),
                AttentionCache::new(&Cpu).unwrap(),
            );
            l.cross_attend(&x, &m, Some(KeyPadding::new(&ids, 0)), &mut y, &mut c)
                .unwrap();
            y.to_vec()
                .unwrap()
                .iter()
                .zip(&rv)
                .map(|(a, b)| a * b)
                .sum()
        };
        let x = Tensor::<S2<3, 4>, f64>::from_slice(&Cpu, &xv).unwrap();
        let m = Tensor::<S2<5, 4>, f64>::from_slice(&Cpu, &mv).unwrap();
        let r = Tensor::<S2<3, 4>, f64>::from_slice(&Cpu, &rv).unwrap();
        let (mut y, mut c) = (
            Tensor::empty(&Cpu).unwrap(),
            AttentionCache::new(&Cpu).unwrap(),
        );
        l.cross_attend(&x, &m, Some(KeyPadding::new(&ids, 0)), &mut y, &mut c)
            .unwrap();
        let (mut dx, mut dm, mut g) = (
            Tensor::empty(&Cpu).unwrap(),
            Tensor::empty(&Cpu).unwrap(),
            l.grads().unwrap(),
        );
        let (dxs, dms) = (Some((&mut dx, Acc::Set)), Some((&mut dm, Acc::Set)));
        l.cross_attend_backward(&x, &m, &mut c, &r, dxs, dms, &mut g, Acc::Set)
            .unwrap();
        let check =
            |what: &str, analytic: Vec<f64>, f: &mut dyn FnMut(&[f64]) -> f64, at: &[f64]| {
                let (n1, n2) = (numeric_grad(at, &mut *f), numeric_grad_small(at, &mut *f));
                let e = rel_err2(&analytic, &n1, &n2);
                assert!(e < 1e-6, "causal {causal}, {what}: {e}");
            };
        check("x", dx.to_vec().unwrap(), &mut |v| loss(&l, v, &mv), &xv);
        check(
            "memory",
            dm.to_vec().unwrap(),
            &mut |v| loss(&l, &xv, v),
            &mv,
        );
        let wv = l.in_proj_weight.to_vec().unwrap();
        let gw = g.in_proj_weight.to_vec().unwrap();
        check(
            "in_proj_weight",
            gw,
            &mut |v| {
                l.in_proj_weight.copy_from_slice(v).unwrap();
                loss(&l, &xv, &mv)
            },
            &wv,
        );
    }
}
