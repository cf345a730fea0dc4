//! `InputGrad` of batch norm (both modes), layer norm, PReLU, transposed and
//! masked convolutions: each layer's `backward_input` against the `dx` of
//! its full `backward` (f64, same inputs, `Acc::Set` and `Acc::Add`, to
//! 1e-12), then `backward_from` through small generated networks holding
//! them against central differences (batch norm after an evaluation forward,
//! with trained running statistics, and after a training forward).

use kiln::layers::{
    BatchNorm1d, BatchNorm2d, BatchNormConfig, ConvTranspose2d, ConvTranspose2dConfig, LayerNorm,
    LayerNorm1d, LayerNormConfig, MaskType, MaskedConv2d, MaskedConv2dConfig, PRelu, PReluConfig,
};
use kiln::testing::{check_input_grad, numeric_grad, numeric_grad_small, random_input, rel_err2};
use kiln::{rng, Build, Cpu, GradMode, Layer, Shape, Tensor, TrainCtx, S1, S2, S3};

/// `backward_input` and the full `backward` agree to this (the same kernels
/// or the same arithmetic).
const SAME: f64 = 1e-12;
/// Central differences (`kiln::testing`'s two steps, the better one).
const FD: f64 = 1e-6;

fn t<S: Shape>(batch: usize, v: &[f64]) -> Tensor<S, f64> {
    Tensor::from_vec(&Cpu, batch, v.to_vec()).unwrap()
}

/// Gives a batch norm random γ, β and running statistics (the variance
/// positive), as a trained one has.
fn trained<S: Shape, const C: usize>(bn: &mut kiln::layers::BatchNorm<f64, Cpu, S, C>, seed: u64) {
    let mut r = rng(seed);
    bn.weight.copy_from_slice(&random_input(C, &mut r)).unwrap();
    bn.bias.copy_from_slice(&random_input(C, &mut r)).unwrap();
    bn.running_mean
        .copy_from_slice(&random_input(C, &mut r))
        .unwrap();
    let var: Vec<f64> = random_input(C, &mut r)
        .iter()
        .map(|v| 0.3 + v.abs())
        .collect();
    bn.running_var.copy_from_slice(&var).unwrap();
}

#[test]
fn batch_norm_input_gradient_equals_the_full_backward_in_both_modes() {
    let cfg = BatchNormConfig::default();
    let mut b1 = BatchNorm1d::<f64, Cpu, 4>::build(&Cpu, &mut rng(0), cfg).unwrap();
    trained(&mut b1, 1);
    let mut b2 = BatchNorm2d::<f64, Cpu, 3, 2, 3>::build(&Cpu, &mut rng(0), cfg).unwrap();
    trained(&mut b2, 2);
    for train in [false, true] {
        let e1 = check_input_grad(&mut b1, 5, 3, train).unwrap();
        let e2 = check_input_grad(&mut b2, 3, 4, train).unwrap();
        assert!(e1 < SAME && e2 < SAME, "train {train}: {e1:e}, {e2:e}");
    }
}

/// Evaluation mode by hand: `dx = dy·γ/√(running_var + ε)`, channel by
/// channel, whatever the batch statistics; and the training-mode `dx` of
/// a channel sums to zero over the batch (the batch mean is subtracted),
/// which the evaluation-mode one does not.
#[test]
fn batch_norm_evaluation_input_gradient_by_hand() {
    let mut bn =
        BatchNorm1d::<f64, Cpu, 2>::build(&Cpu, &mut rng(0), BatchNormConfig::default()).unwrap();
    bn.weight.copy_from_slice(&[2.0, -0.5]).unwrap();
    bn.running_var.copy_from_slice(&[3.0, 0.25]).unwrap();
    bn.running_mean.copy_from_slice(&[1.0, -1.0]).unwrap();
    let x = t::<S1<2>>(3, &[1., 2., 3., 4., 5., 7.]);
    let dy = t::<S1<2>>(3, &[1., 1., 2., -1., 0.5, 4.]);
    let mut y = Tensor::empty(&Cpu).unwrap();
    let mut cache = bn.cache().unwrap();
    let mut dx = Tensor::empty(&Cpu).unwrap();
    bn.forward(&x, &mut y, &mut cache).unwrap();
    kiln::InputGrad::backward_input(
        &bn,
        &x,
        &y,
        &mut cache,
        &dy,
        Some((&mut dx, kiln::Acc::Set)),
        GradMode::Plain,
    )
    .unwrap();
    let (s0, s1) = (2.0 / (3.0f64 + 1e-5).sqrt(), -0.5 / (0.25f64 + 1e-5).sqrt());
    let want = [s0, s1, 2. * s0, -s1, 0.5 * s0, 4. * s1];
    for (g, w) in dx.to_vec().unwrap().iter().zip(want) {
        assert!((g - w).abs() < 1e-14, "{g} vs {w}");
    }
    bn.forward_train(&x, &mut y, &mut cache, &mut TrainCtx::new(0))
        .unwrap();
    kiln::InputGrad::backward_input(
        &bn,
        &x,
        &y,
        &mut cache,
        &dy,
        Some((&mut dx, kiln::Acc::Set)),
        GradMode::Plain,
    )
    .unwrap();
    let v = dx.to_vec().unwrap();
    for c in 0..2 {
        let s: f64 = (0..3).map(|b| v[b * 2 + c]).sum();
        assert!(s.abs() < 1e-12, "channel {c}: Σdx = {s}");
    }
}

#[test]
fn layer_norm_and_prelu_input_gradients_equal_the_full_backward() {
    let mut r = rng(5);
    let mut ln =
        LayerNorm::<f64, Cpu, S2<3, 4>, 4>::build(&Cpu, &mut r, LayerNormConfig::default())
            .unwrap();
    let g = random_input(4, &mut r);
    ln.weight.as_mut().unwrap().copy_from_slice(&g).unwrap();
    let plain = LayerNormConfig {
        elementwise_affine: false,
        ..Default::default()
    };
    let mut ln0 = LayerNorm1d::<f64, Cpu, 5>::build(&Cpu, &mut r, plain).unwrap();
    let mut p1 =
        PRelu::<f64, Cpu, S3<2, 2, 3>, 1>::build(&Cpu, &mut r, PReluConfig::default()).unwrap();
    let mut p2 =
        PRelu::<f64, Cpu, S3<2, 2, 3>, 2>::build(&Cpu, &mut r, PReluConfig::default()).unwrap();
    p2.weight.copy_from_slice(&[0.25, -0.75]).unwrap();
    let errs = [
        check_input_grad(&mut ln, 2, 6, true).unwrap(),
        check_input_grad(&mut ln0, 3, 7, false).unwrap(),
        check_input_grad(&mut p1, 2, 8, true).unwrap(),
        check_input_grad(&mut p2, 3, 9, false).unwrap(),
    ];
    assert!(errs.iter().all(|&e| e < SAME), "{errs:?}");
}

#[test]
fn transposed_and_masked_convolution_input_gradients_equal_the_full_backward() {
    let mut r = rng(10);
    let cfg = ConvTranspose2dConfig {
        stride: (2, 2),
        padding: (1, 1),
        output_padding: (1, 1),
        groups: 2,
        ..Default::default()
    };
    let mut ct =
        ConvTranspose2d::<f64, Cpu, 4, 4, 2, 3, 3, 3, 3, 6, 6>::build(&Cpu, &mut r, cfg).unwrap();
    let plain = ConvTranspose2dConfig {
        bias: false,
        ..Default::default()
    };
    let mut ct1 =
        ConvTranspose2d::<f64, Cpu, 2, 3, 3, 2, 2, 4, 4, 5, 5>::build(&Cpu, &mut r, plain).unwrap();
    let mut errs = vec![
        check_input_grad(&mut ct, 3, 11, true).unwrap(),
        check_input_grad(&mut ct1, 1, 12, false).unwrap(),
    ];
    for mask in [MaskType::A, MaskType::B] {
        let cfg = MaskedConv2dConfig {
            mask,
            padding: (1, 1),
            ..Default::default()
        };
        let mut mc =
            MaskedConv2d::<f64, Cpu, 2, 3, 2, 3, 3, 5, 5, 5, 5>::build(&Cpu, &mut r, cfg).unwrap();
        errs.push(check_input_grad(&mut mc, 2, 13, true).unwrap());
    }
    assert!(errs.iter().all(|&e| e < SAME), "{errs:?}");
}

/// The masked-out taps do not reach the input gradient: a type-A 3×3 mask
/// on a one-channel 3×3 image with padding 1 and every weight 1 sends the
/// output gradient at pixel `(r, c)` to the four taps above and to its left
/// only, so a gradient of 1 at the centre reaches exactly `(0, 0)`, `(0, 1)`,
/// `(0, 2)` and `(1, 0)`.
#[test]
fn masked_convolution_input_gradient_skips_the_masked_taps() {
    let cfg = MaskedConv2dConfig {
        mask: MaskType::A,
        padding: (1, 1),
        bias: false,
        ..Default::default()
    };
    let mut mc =
        MaskedConv2d::<f64, Cpu, 1, 1, 1, 3, 3, 3, 3, 3, 3>::build(&Cpu, &mut rng(0), cfg).unwrap();
    mc.conv.weight.copy_from_slice(&[1.0; 9]).unwrap();
    let x = t::<S3<1, 3, 3>>(1, &[0.0; 9]);
    let (mut y, mut cache) = (Tensor::empty(&Cpu).unwrap(), mc.cache().unwrap());
    mc.forward(&x, &mut y, &mut cache).unwrap();
    let mut dy = vec![0.0; 9];
    dy[4] = 1.0;
    let mut dx = Tensor::empty(&Cpu).unwrap();
    kiln::InputGrad::backward_input(
        &mc,
        &x,
        &y,
        &mut cache,
        &t::<S3<1, 3, 3>>(1, &dy),
        Some((&mut dx, kiln::Acc::Set)),
        GradMode::Plain,
    )
    .unwrap();
    assert_eq!(
        dx.to_vec().unwrap(),
        vec![1., 1., 1., 1., 0., 0., 0., 0., 0.]
    );
}

kiln::network! {
    /// A ResNet-shaped CNN with batch norm (FashionResNet's block, smaller).
    pub struct BnResNet {
        input x: [1, 6, 6],
        let s = x |> stem: Conv2d(3, kernel = 3, padding = 1, bias = false) |> bn0: BatchNorm2d |> relu;
        let h = s |> c1: Conv2d(3, kernel = 3, padding = 1, bias = false) |> n1: BatchNorm2d |> relu
                  |> c2: Conv2d(3, kernel = 3, padding = 1, bias = false) |> n2: BatchNorm2d;
        let r = relu(h + s) |> c3: Conv2d(4, kernel = 3, padding = 1, bias = false);
        output r |> n3: BatchNorm2d |> tanh |> gap: GlobalAvgPool |> fc: Linear(3);
    }
}

kiln::network! {
    /// Batch norm over features, layer norm, PReLU (per feature and shared).
    pub struct NormMlp {
        input: [6],
        fc1: Linear(5),
        bn: BatchNorm1d,
        act: PReLU(5),
        fc2: Linear(4),
        ln: LayerNorm,
        p2: PReLU,
        fc3: Linear(3),
    }
}

kiln::network! {
    /// A decoder: transposed convolution up, a masked convolution.
    pub struct Decoder {
        input: [2, 3, 3],
        up: ConvTranspose2d(3, kernel = 3, stride = 2, padding = 1, output_padding = 1),
        tanh,
        mc: MaskedConv2d(2, kernel = 3, mask = "B", padding = 1),
        flatten,
        fc: Linear(3),
    }
}

kiln::network! {
    /// Max unpooling restores the positions its pool recorded.
    pub struct UnpoolNet {
        input: [2, 4, 4],
        conv: Conv2d(2, kernel = 3, padding = 1),
        pool: MaxPool2d(2),
        tanh,
        unpool: MaxUnpool2d(pool),
        flatten,
        fc: Linear(3),
    }
}

kiln::network! {
    /// A sequence of 5 positions: learned and sinusoidal positions, layer
    /// norm per position, both time pools.
    pub struct SeqPools {
        input x: [5, 4],
        let h = x |> pos: PositionalEmbedding(8) |> SinusoidalPositions |> proj: Linear(6) |> tanh |> ln: LayerNorm;
        let avg = h |> mean_over_time;
        let top = h |> max_over_time;
        output concat(avg, top) |> head: Linear(3);
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Runs the training forward of a `BnResNet` on `n` random batches, so its
/// running statistics are those of data, not the initial (0, 1).
fn warm_up(net: &mut BnResNet<f64, Cpu>, n: u64) {
    let mut tape = net.tape().unwrap();
    for i in 0..n {
        let xv = random_input(4 * 36, &mut rng(100 + i));
        net.forward_train(&t(4, &xv), &mut tape).unwrap();
    }
}

/// `backward_from(fc → x)` of `seed · scores` through the batch-norm ResNet
/// against central differences: after an evaluation forward (`forward_with`,
/// the running statistics, what Grad-CAM on a trained network sees) and
/// after a training forward (batch statistics: every sample's score depends
/// on every sample's input).
#[test]
fn bn_resnet_backward_from_matches_finite_differences_in_both_modes() {
    let mut net = BnResNet::<f64, Cpu>::init(&Cpu, &mut rng(20)).unwrap();
    warm_up(&mut net, 3);
    for (i, bn) in [&mut net.bn0, &mut net.n1, &mut net.n2]
        .into_iter()
        .enumerate()
    {
        let mut r = rng(30 + i as u64);
        bn.weight.copy_from_slice(&random_input(3, &mut r)).unwrap();
        bn.bias.copy_from_slice(&random_input(3, &mut r)).unwrap();
    }
    let batch = 2;
    let x0 = random_input(batch * 36, &mut rng(21));
    let seed = random_input(batch * 3, &mut rng(22));
    let mut tape = net.tape().unwrap();
    let mut probe = net.tape().unwrap();
    // Evaluation mode.
    net.forward_with(&t(batch, &x0), &mut tape).unwrap();
    for from in ["fc", "c3", "n2"] {
        let s = random_input(tape.activation(from).unwrap().data.len(), &mut rng(23));
        net.backward_from(&mut tape, from, &s, "x", GradMode::Plain)
            .unwrap();
        let got = tape.gradient("x").unwrap().data;
        let mut f = |v: &[f64]| {
            net.forward_with(&t(batch, v), &mut probe).unwrap();
            dot(&s, &probe.activation(from).unwrap().data)
        };
        let (n1, n2) = (numeric_grad(&x0, &mut f), numeric_grad_small(&x0, &mut f));
        let err = rel_err2(&got, &n1, &n2);
        println!("BnResNet eval, {from} → x: {err:.2e}");
        assert!(err < FD, "eval, from {from}: {err}");
    }
    // Training mode: the running statistics move at every forward, which
    // the training output does not read.
    net.forward_train(&t(batch, &x0), &mut tape).unwrap();
    net.backward_from(&mut tape, "fc", &seed, "x", GradMode::Plain)
        .unwrap();
    let got = tape.gradient("x").unwrap().data;
    let mut f = |v: &[f64]| {
        net.forward_train(&t(batch, v), &mut probe).unwrap();
        dot(&seed, &probe.activation("fc").unwrap().data)
    };
    let (n1, n2) = (numeric_grad(&x0, &mut f), numeric_grad_small(&x0, &mut f));
    let err = rel_err2(&got, &n1, &n2);
    println!("BnResNet train, fc → x: {err:.2e}");
    assert!(err < FD, "train: {err}");
}

#[test]
fn norm_mlp_and_decoder_backward_from_match_finite_differences() {
    let mut mlp = NormMlp::<f64, Cpu>::init(&Cpu, &mut rng(40)).unwrap();
    mlp.act
        .weight
        .copy_from_slice(&[0.25, -0.5, 0.1, 0.7, -0.2])
        .unwrap();
    let batch = 3;
    let x0 = random_input(batch * 6, &mut rng(41));
    let seed = random_input(batch * 3, &mut rng(42));
    let (mut tape, mut probe) = (mlp.tape().unwrap(), mlp.tape().unwrap());
    for train in [false, true] {
        if train {
            mlp.forward_train(&t(batch, &x0), &mut tape).unwrap();
        } else {
            mlp.forward_with(&t(batch, &x0), &mut tape).unwrap();
        }
        mlp.backward_from(&mut tape, "fc3", &seed, "x", GradMode::Plain)
            .unwrap();
        let got = tape.gradient("x").unwrap().data;
        let mut f = |v: &[f64]| {
            if train {
                mlp.forward_train(&t(batch, v), &mut probe).unwrap();
            } else {
                mlp.forward_with(&t(batch, v), &mut probe).unwrap();
            }
            dot(&seed, &probe.activation("fc3").unwrap().data)
        };
        let (n1, n2) = (numeric_grad(&x0, &mut f), numeric_grad_small(&x0, &mut f));
        let err = rel_err2(&got, &n1, &n2);
        println!("NormMlp (train {train}) fc3 → x: {err:.2e}");
        assert!(err < FD, "NormMlp, train {train}: {err}");
    }
    let dec = Decoder::<f64, Cpu>::init(&Cpu, &mut rng(43)).unwrap();
    let x0 = random_input(batch * 18, &mut rng(44));
    let (mut tape, mut probe) = (dec.tape().unwrap(), dec.tape().unwrap());
    dec.forward_with(&t(batch, &x0), &mut tape).unwrap();
    for from in ["fc", "mc", "up"] {
        let s = random_input(tape.activation(from).unwrap().data.len(), &mut rng(45));
        dec.backward_from(&mut tape, from, &s, "x", GradMode::Plain)
            .unwrap();
        let got = tape.gradient("x").unwrap().data;
        let mut f = |v: &[f64]| {
            dec.forward_with(&t(batch, v), &mut probe).unwrap();
            dot(&s, &probe.activation(from).unwrap().data)
        };
        let (n1, n2) = (numeric_grad(&x0, &mut f), numeric_grad_small(&x0, &mut f));
        let err = rel_err2(&got, &n1, &n2);
        println!("Decoder {from} → x: {err:.2e}");
        assert!(err < FD, "Decoder from {from}: {err}");
    }
}

/// Grad-CAM at `c3` (the last convolution, before batch norm) of a trained
/// batch-norm ResNet in evaluation mode, against the map worked out from
/// the activations and the parameters: after `c3` the score of class `k`
/// is `b_k + Σ_c W[k, c]·mean_ij tanh(γ_c·(A[c,i,j] − m_c)/√(v_c + ε) + β_c)`,
/// so `∂s_k/∂A[c,i,j] = W[k, c]·γ_c/√(v_c + ε)·(1 − tanh²(·))/36`, `α_c` its
/// mean over the 6×6 plane, and the map `ReLU(Σ_c α_c·A[c])`.
#[test]
fn grad_cam_on_a_batch_norm_resnet_matches_the_hand_computation() {
    let mut net = BnResNet::<f64, Cpu>::init(&Cpu, &mut rng(50)).unwrap();
    warm_up(&mut net, 4);
    let mut r = rng(51);
    net.n3
        .weight
        .copy_from_slice(&random_input(4, &mut r))
        .unwrap();
    net.n3
        .bias
        .copy_from_slice(&random_input(4, &mut r))
        .unwrap();
    let batch = 2;
    let x0: Vec<f64> = random_input(batch * 36, &mut rng(52));
    let mut tape = net.tape().unwrap();
    net.forward_with(&t(batch, &x0), &mut tape).unwrap();
    let (gamma, beta) = (
        net.n3.weight.to_vec().unwrap(),
        net.n3.bias.to_vec().unwrap(),
    );
    let (m, v) = (
        net.n3.running_mean.to_vec().unwrap(),
        net.n3.running_var.to_vec().unwrap(),
    );
    let w = net.fc.weight.to_vec().unwrap();
    let mut nonzero = 0;
    for class in 0..3 {
        let mut seed = vec![0.0; batch * 3];
        for b in 0..batch {
            seed[b * 3 + class] = 1.0;
        }
        net.backward_from(&mut tape, "fc", &seed, "c3", GradMode::Plain)
            .unwrap();
        let (act, grad) = (tape.activation("c3").unwrap(), tape.gradient("c3").unwrap());
        for b in 0..batch {
            let a = act.sample(b).unwrap();
            let cam = kiln::vis::grad_cam(&act, &grad, b).unwrap();
            assert_eq!((cam.h, cam.w), (6, 6));
            let mut want = vec![0.0f64; 36];
            for (c, plane) in a.chunks(36).enumerate() {
                let s = gamma[c] / (v[c] + 1e-5).sqrt();
                let alpha = plane
                    .iter()
                    .map(|&ap| {
                        let z = (s * (ap - m[c]) + beta[c]).tanh();
                        w[class * 4 + c] * s * (1.0 - z * z) / 36.0
                    })
                    .sum::<f64>()
                    / 36.0;
                for (wp, &ap) in want.iter_mut().zip(plane) {
                    *wp += alpha * ap;
                }
            }
            assert_eq!(cam.data.len(), 36);
            for (p, (&wp, &got)) in want.iter().zip(&cam.data).enumerate() {
                let hand = wp.max(0.0);
                let got = got as f64;
                assert!(
                    (got - hand).abs() <= 1e-6 * hand.abs().max(1e-3),
                    "class {class}, sample {b}, pixel {p}: {got} vs {hand}"
                );
                nonzero += (hand > 0.0) as usize;
            }
        }
    }
    // The maps are not trivially zero.
    assert!(nonzero > 20, "{nonzero} positive pixels");
}

/// `backward_from` through max unpooling (its own parameter-free backward,
/// reading the pool's indices from the tape) against central differences;
/// and from `unpool` the gradient at `tanh1` is the gather `dy[idx]`, so it
/// is zero nowhere the seed is nonzero everywhere.
#[test]
fn unpool_backward_from_matches_finite_differences() {
    let net = UnpoolNet::<f64, Cpu>::init(&Cpu, &mut rng(60)).unwrap();
    let batch = 2;
    let x0 = random_input(batch * 32, &mut rng(61));
    let (mut tape, mut probe) = (net.tape().unwrap(), net.tape().unwrap());
    net.forward_with(&t(batch, &x0), &mut tape).unwrap();
    for from in ["fc", "unpool"] {
        let s = random_input(tape.activation(from).unwrap().data.len(), &mut rng(62));
        net.backward_from(&mut tape, from, &s, "x", GradMode::Plain)
            .unwrap();
        let got = tape.gradient("x").unwrap().data;
        let mut f = |v: &[f64]| {
            net.forward_with(&t(batch, v), &mut probe).unwrap();
            dot(&s, &probe.activation(from).unwrap().data)
        };
        let (n1, n2) = (numeric_grad(&x0, &mut f), numeric_grad_small(&x0, &mut f));
        let err = rel_err2(&got, &n1, &n2);
        println!("UnpoolNet {from} → x: {err:.2e}");
        assert!(err < FD, "UnpoolNet from {from}: {err}");
    }
    // From the unpooling's output to its input: dx[q] = dy[idx[q]], the
    // seed read at the positions the pool's maxima came from.
    let a = tape.activation("unpool").unwrap().data;
    let s: Vec<f64> = (0..a.len()).map(|i| 1.0 + i as f64).collect();
    net.backward_from(&mut tape, "unpool", &s, "tanh1", GradMode::Plain)
        .unwrap();
    let g = tape.gradient("tanh1").unwrap().data;
    let z = tape.activation("tanh1").unwrap().data;
    assert_eq!(g.len(), batch * 8);
    for (q, (&gq, &zq)) in g.iter().zip(&z).enumerate() {
        // The unpooled value sits where the seed is 1 + its flat index.
        let at = a.iter().position(|&v| v == zq).unwrap();
        assert_eq!(gq, 1.0 + at as f64, "pooled value {q}");
    }
}

/// The time pools and positional layers: `backward_from(head → x)` against
/// central differences (the pools' and positions' `InputGrad` is their own
/// parameter-free backward, or `dx = dy` for the learned table).
#[test]
fn sequence_pools_and_positions_backward_from_matches_finite_differences() {
    let net = SeqPools::<f64, Cpu>::init(&Cpu, &mut rng(70)).unwrap();
    let batch = 2;
    let x0 = random_input(batch * 20, &mut rng(71));
    let seed = random_input(batch * 3, &mut rng(72));
    let (mut tape, mut probe) = (net.tape().unwrap(), net.tape().unwrap());
    net.forward_with(&t(batch, &x0), &mut tape).unwrap();
    net.backward_from(&mut tape, "head", &seed, "x", GradMode::Plain)
        .unwrap();
    let got = tape.gradient("x").unwrap().data;
    let mut f = |v: &[f64]| {
        net.forward_with(&t(batch, v), &mut probe).unwrap();
        dot(&seed, &probe.activation("head").unwrap().data)
    };
    let (n1, n2) = (numeric_grad(&x0, &mut f), numeric_grad_small(&x0, &mut f));
    let err = rel_err2(&got, &n1, &n2);
    println!("SeqPools head → x: {err:.2e}");
    assert!(err < FD, "SeqPools: {err}");
}
