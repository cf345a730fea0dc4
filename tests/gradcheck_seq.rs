//! The shapes sequences need: dimensions written as integer expressions and
//! named constants, const generic dimensions, position-wise layers on
//! `[T, D]`, `concat` along any dimension, `reshape`, and pooling over time.
//! Each network here is gradient-checked against central differences in f64
//! like those of `gradcheck.rs`.

use kiln::prelude::*;
use kiln::testing::check_layer;

const TOL: f64 = 1e-6;

kiln::network! {
    /// LeNet-5 with the flattened width written as PyTorch users write it.
    pub struct LeNetExpr {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(2 * 8, kernel = 5),
        relu,
        pool2: MaxPool2d(2),
        flatten,
        fc1: Linear(16 * 5 * 5, 120),
        relu,
        fc2: Linear(84),
        relu,
        fc3: Linear(10),
    }
}

kiln::network! {
    /// A small convolutional net sized by expressions, for the gradient check.
    pub struct ConvExpr {
        input: [1, 4 + 4, 8],
        conv: Conv2d(2 * 2, kernel = 3, padding = 2 - 1),
        relu,
        pool: MaxPool2d(8 / 4),
        flatten,
        fc: Linear(4 * 4 * 4, 5),
    }
}

const HIDDEN: usize = 7;
const EMBED: usize = 5;

mod consts {
    pub const CLASSES: usize = 3;
}

kiln::network! {
    /// Widths the macro cannot see: they go into the types as `{ HIDDEN }`.
    pub struct Named {
        input: [EMBED],
        fc1: Linear(HIDDEN),
        tanh,
        fc2: Linear(HIDDEN, 2 * HIDDEN),
        relu,
        fc3: Linear(2 * HIDDEN, consts::CLASSES),
        softmax,
    }
}

kiln::network! {
    /// A graph whose declared shapes are named: `h: [HIDDEN]` is checked by
    /// the compiler, and the residual addition of two `[HIDDEN]` values by
    /// the macro (the same name).
    pub struct NamedGraph {
        input x: [EMBED],
        let h: [HIDDEN] = x |> enc: Linear(HIDDEN) |> tanh;
        let g = h |> mix: Linear(HIDDEN) |> sigmoid;
        output h + g |> head: Linear(HIDDEN, 2);
    }
}

#[test]
fn integer_expressions_are_evaluated() {
    // The same parameter count as the LeNet-5 of `kiln::models`.
    assert_eq!(LeNetExpr::PARAMS, kiln::models::LeNet5::PARAMS);
    assert_eq!(LeNetExpr::PARAMS, 61_706);
    assert_eq!(LeNetExpr::OUTPUTS, &[&[10usize][..]]);
    assert_eq!(ConvExpr::INPUTS, &[&[1usize, 8, 8][..]]);
    assert_eq!(ConvExpr::PARAMS, 4 * 9 + 4 + 64 * 5 + 5);
    let mut net = ConvExpr::<f64, Cpu>::init(&Cpu, &mut rng(11)).unwrap();
    let err = check_layer(&mut net, 1, 12).unwrap();
    assert!(err < TOL, "{err}");
}

#[test]
fn named_constants_reach_the_types() {
    assert_eq!(Named::INPUTS, &[&[EMBED][..]]);
    assert_eq!(Named::OUTPUTS, &[&[consts::CLASSES][..]]);
    assert_eq!(Named::PARAMS, EMBED * 7 + 7 + 7 * 14 + 14 + 14 * 3 + 3);
    let s = Named::summary();
    assert!(s.contains("Linear(HIDDEN, 2 * HIDDEN)"), "{s}");
    let mut net = Named::<f64, Cpu>::init(&Cpu, &mut rng(13)).unwrap();
    assert_eq!(net.fc2.weight.shape(), vec![1, 14, 7]);
    let err = check_layer(&mut net, 3, 14).unwrap();
    assert!(err < TOL, "{err}");
}

#[test]
fn named_declared_shapes_in_a_graph() {
    assert_eq!(NamedGraph::PARAMS, 5 * 7 + 7 + 7 * 7 + 7 + 7 * 2 + 2);
    let mut net = NamedGraph::<f64, Cpu>::init(&Cpu, &mut rng(15)).unwrap();
    let err = check_layer(&mut net, 3, 16).unwrap();
    assert!(err < TOL, "{err}");
}

kiln::network! {
    /// Position-wise layers on a sequence `[T, D]`: each `Linear` is one
    /// GEMM over all `B·T` rows, softmax normalises every position.
    pub struct PerPosition {
        input: [8, 16],
        fc1: Linear(32),
        relu,
        drop: Dropout(0.0),
        fc2: Linear(32, 5),
        softmax,
    }
}

kiln::network! {
    /// The same layers on one position: `PerPosition` applied row by row.
    pub struct OnePosition {
        input: [16],
        fc1: Linear(32),
        relu,
        drop: Dropout(0.0),
        fc2: Linear(32, 5),
        softmax,
    }
}

/// Copies every parameter of `src` into `dst` (same paths, same sizes).
fn load<A: Module<f64, Cpu>, B: Module<f64, Cpu>>(src: &A, dst: &mut B) {
    let mut v: Vec<Vec<f64>> = Vec::new();
    src.visit(&kiln::Path::ROOT, &mut |_, p| {
        v.push(p.value[..p.numel].to_vec())
    });
    let mut i = 0;
    dst.visit_mut(&kiln::Path::ROOT, &mut |_, p, _| {
        p.value[..p.numel].copy_from_slice(&v[i]);
        i += 1;
    });
    assert_eq!(i, v.len());
}

#[test]
fn position_wise_layers_on_a_sequence() {
    assert_eq!(PerPosition::OUTPUTS, &[&[8usize, 5][..]]);
    assert_eq!(PerPosition::PARAMS, OnePosition::PARAMS);
    assert_eq!(PerPosition::PARAMS, 16 * 32 + 32 + 32 * 5 + 5);
    // One Linear's multiply–adds are T times the vector layer's.
    assert_eq!(
        <kiln::layers::Linear<f32, Cpu, 16, 32, S1<8>> as Layer<f32, Cpu>>::FLOPS,
        8 * 16 * 32
    );
    let mut net = PerPosition::<f64, Cpu>::init(&Cpu, &mut rng(21)).unwrap();
    assert_eq!(net.fc1.weight.shape(), vec![1, 32, 16]);
    let err = check_layer(&mut net, 2, 22).unwrap();
    assert!(err < TOL, "{err}");

    // Row by row, the sequence network is the vector network.
    let mut one = OnePosition::<f64, Cpu>::init(&Cpu, &mut rng(23)).unwrap();
    load(&net, &mut one);
    let xs: Vec<f64> = (0..3 * 8 * 16).map(|i| (i as f64 * 0.11).cos()).collect();
    let x = Tensor::<S2<8, 16>, f64>::from_slice(&Cpu, &xs).unwrap();
    let y = net.forward(&x).unwrap().to_vec().unwrap();
    let rows = Tensor::<S1<16>, f64>::from_slice(&Cpu, &xs).unwrap();
    let yr = one.forward(&rows).unwrap().to_vec().unwrap();
    assert_eq!(y.len(), 3 * 8 * 5);
    for (a, b) in y.iter().zip(&yr) {
        assert!((a - b).abs() < 1e-12, "{a} {b}");
    }
    for row in y.chunks(5) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}

kiln::network! {
    /// A sequence length that only passes through: the same weights serve
    /// any `T` (`SeqMlp<f32, Cpu, 64>` for training, `SeqMlp<f32, Cpu, 1>`
    /// for one step).
    pub struct SeqMlp<const T: usize> {
        input: [T, 16],
        fc: Linear(32),
        relu,
        out: Linear(4),
        softmax,
    }
}

kiln::network! {
    /// A generic dimension with a default, so `E` and `D` keep theirs.
    pub struct Windowed<const T: usize = 3> {
        input x: [T, 4],
        let h: [T, 6] = x |> enc: Linear(6) |> tanh;
        output h + h |> head: Linear(2);
    }
}

#[test]
fn generic_sequence_length_shares_weights() {
    assert_eq!(SeqMlp::<f32, Cpu, 64>::INPUTS, &[&[64usize, 16][..]]);
    assert_eq!(SeqMlp::<f32, Cpu, 1>::OUTPUTS, &[&[1usize, 4][..]]);
    assert_eq!(SeqMlp::<f32, Cpu, 64>::PARAMS, 16 * 32 + 32 + 32 * 4 + 4);
    assert_eq!(SeqMlp::<f32, Cpu, 7>::PARAMS, SeqMlp::<f32, Cpu, 1>::PARAMS);

    let mut long = SeqMlp::<f64, Cpu, 6>::init(&Cpu, &mut rng(31)).unwrap();
    let err = check_layer(&mut long, 2, 32).unwrap();
    assert!(err < TOL, "{err}");

    // Load the T = 6 network's parameters into a T = 1 network: each of the
    // six positions, fed alone, gives the same row.
    let mut short = SeqMlp::<f64, Cpu, 1>::init(&Cpu, &mut rng(33)).unwrap();
    load(&long, &mut short);
    let xs: Vec<f64> = (0..2 * 6 * 16).map(|i| (i as f64 * 0.07).sin()).collect();
    let x = Tensor::<S2<6, 16>, f64>::from_slice(&Cpu, &xs).unwrap();
    let y = long.forward(&x).unwrap().to_vec().unwrap();
    for (row, chunk) in xs.chunks(16).enumerate() {
        let x1 = Tensor::<S2<1, 16>, f64>::from_slice(&Cpu, chunk).unwrap();
        let y1 = short.forward(&x1).unwrap().to_vec().unwrap();
        assert_eq!(y1.len(), 4);
        for (a, b) in y1.iter().zip(&y[row * 4..row * 4 + 4]) {
            assert!((a - b).abs() < 1e-12, "row {row}: {a} {b}");
        }
    }
}

#[test]
fn generic_dimension_with_a_default() {
    assert_eq!(Windowed::<f32>::INPUTS, &[&[3usize, 4][..]]);
    assert_eq!(Windowed::<f32, Cpu, 5>::OUTPUTS, &[&[5usize, 2][..]]);
    let mut net = Windowed::<f64, Cpu, 5>::init(&Cpu, &mut rng(34)).unwrap();
    let err = check_layer(&mut net, 2, 35).unwrap();
    assert!(err < TOL, "{err}");
}

kiln::network! {
    /// Concatenations along every dimension of a sequence: features
    /// (`dim = 1`, `dim = -1`) and time (`dim = 0`, the default).
    pub struct Joins {
        input a: [3, 4],
        input b: [3, 2],
        let h = a |> fa: Linear(5) |> tanh;
        let wide = concat(h, b, h, dim = 1);
        let last = concat(b, a, dim = -1);
        let long = concat(a, a);
        output wide |> fw: Linear(2);
        output last + last |> fl: Linear(2);
        output long |> sigmoid;
    }
}

#[test]
fn concat_along_any_dimension() {
    assert_eq!(
        Joins::OUTPUTS,
        &[&[3usize, 2][..], &[3usize, 2][..], &[6usize, 4][..]]
    );
    let mut r = rng(41);
    let mut net = Joins::<f64, Cpu>::init(&Cpu, &mut r).unwrap();
    let av: Vec<f64> = (0..2 * 12).map(|i| (i as f64 * 0.3).sin()).collect();
    let bv: Vec<f64> = (0..2 * 6).map(|i| (i as f64 * 0.5).cos()).collect();
    let a = Tensor::<S2<3, 4>, f64>::from_slice(&Cpu, &av).unwrap();
    let b = Tensor::<S2<3, 2>, f64>::from_slice(&Cpu, &bv).unwrap();
    // L = Σ w_o ⊙ output_o with fixed weights; compare dL/da, dL/db and the
    // parameter gradients with central differences.
    let w: Vec<Vec<f64>> = [12usize, 12, 48]
        .iter()
        .map(|&n| (0..n).map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0).collect())
        .collect();
    let loss = |net: &Joins<f64, Cpu>, a: &[f64], b: &[f64]| -> f64 {
        let a = Tensor::<S2<3, 4>, f64>::from_slice(&Cpu, a).unwrap();
        let b = Tensor::<S2<3, 2>, f64>::from_slice(&Cpu, b).unwrap();
        let (o1, o2, o3) = net.forward(&a, &b).unwrap();
        [
            o1.to_vec().unwrap(),
            o2.to_vec().unwrap(),
            o3.to_vec().unwrap(),
        ]
        .iter()
        .zip(&w)
        .map(|(o, w)| o.iter().zip(w).map(|(x, y)| x * y).sum::<f64>())
        .sum()
    };
    let mut tape = net.tape().unwrap();
    tape.input_grads = true;
    net.forward_train(&a, &b, &mut tape).unwrap();
    let d1 = Tensor::<S2<3, 2>, f64>::from_slice(&Cpu, &w[0]).unwrap();
    let d2 = Tensor::<S2<3, 2>, f64>::from_slice(&Cpu, &w[1]).unwrap();
    let d3 = Tensor::<S2<6, 4>, f64>::from_slice(&Cpu, &w[2]).unwrap();
    let mut grads = net.grads().unwrap();
    net.backward(&mut tape, &d1, &d2, &d3, &mut grads).unwrap();
    let ga = tape.grad_a.to_vec().unwrap();
    let gb = tape.grad_b.to_vec().unwrap();
    let h = 1e-5;
    let mut worst = 0f64;
    for (i, g) in ga.iter().enumerate() {
        let (mut p, mut m) = (av.clone(), av.clone());
        p[i] += h;
        m[i] -= h;
        let num = (loss(&net, &p, &bv) - loss(&net, &m, &bv)) / (2.0 * h);
        worst = worst.max((g - num).abs() / (1.0 + num.abs()));
    }
    for (i, g) in gb.iter().enumerate() {
        let (mut p, mut m) = (bv.clone(), bv.clone());
        p[i] += h;
        m[i] -= h;
        let num = (loss(&net, &av, &p) - loss(&net, &av, &m)) / (2.0 * h);
        worst = worst.max((g - num).abs() / (1.0 + num.abs()));
    }
    assert!(worst < TOL, "{worst}");
    // The parameters too, one at a time through `visit_mut`.
    let mut analytic: Vec<f64> = Vec::new();
    net.visit_grads(&grads, &kiln::Path::ROOT, &mut |_, p| {
        analytic.extend_from_slice(&p.grad.unwrap()[..p.numel])
    });
    let n = analytic.len();
    assert_eq!(n, Joins::PARAMS);
    for (k, g) in analytic.iter().enumerate() {
        let shift = |net: &mut Joins<f64, Cpu>, delta: f64| {
            let mut i = 0;
            net.visit_mut(&kiln::Path::ROOT, &mut |_, p, _| {
                if (i..i + p.numel).contains(&k) {
                    p.value[k - i] += delta;
                }
                i += p.numel;
            });
        };
        shift(&mut net, h);
        let lp = loss(&net, &av, &bv);
        shift(&mut net, -2.0 * h);
        let lm = loss(&net, &av, &bv);
        shift(&mut net, h);
        let num = (lp - lm) / (2.0 * h);
        worst = worst.max((g - num).abs() / (1.0 + num.abs()));
    }
    assert!(worst < TOL, "{worst}");
}

kiln::network! {
    /// A sequence classifier: position-wise layers, then both poolings over
    /// time joined, and a reshape round trip in between.
    pub struct PoolOverTime {
        input x: [6, 4],
        let h = x |> fc: Linear(8) |> tanh |> reshape([3, 16]) |> reshape([6, 8]);
        let avg = h |> mean_over_time;
        let top = h |> max_over_time;
        output concat(avg, top) |> head: Linear(3);
    }
}

kiln::network! {
    /// Pooling over a generic time axis keeps the network generic.
    pub struct GenericPool<const T: usize> {
        input: [T, 4],
        fc: Linear(5),
        relu,
        max_over_time,
        head: Linear(2),
    }
}

#[test]
fn reshape_and_pooling_over_time() {
    assert_eq!(PoolOverTime::OUTPUTS, &[&[3usize][..]]);
    assert_eq!(PoolOverTime::PARAMS, 4 * 8 + 8 + 16 * 3 + 3);
    let mut net = PoolOverTime::<f64, Cpu>::init(&Cpu, &mut rng(51)).unwrap();
    let err = check_layer(&mut net, 3, 52).unwrap();
    assert!(err < TOL, "{err}");

    let mut g = GenericPool::<f64, Cpu, 7>::init(&Cpu, &mut rng(53)).unwrap();
    let err = check_layer(&mut g, 2, 54).unwrap();
    assert!(err < TOL, "{err}");
    // The same weights at T = 2: the max over two steps.
    let mut g2 = GenericPool::<f64, Cpu, 2>::init(&Cpu, &mut rng(55)).unwrap();
    load(&g, &mut g2);
    let xs = [0.5, -1.0, 2.0, 0.25, -0.5, 1.5, 0.0, 1.0];
    let x = Tensor::<S2<2, 4>, f64>::from_slice(&Cpu, &xs).unwrap();
    let y2 = g2.forward(&x).unwrap().to_vec().unwrap();
    // By hand: relu(fc) per step, the elementwise max, then the head.
    let w = g.fc.weight.to_vec().unwrap();
    let b = g.fc.bias.as_ref().unwrap().to_vec().unwrap();
    let step = |t: usize| -> Vec<f64> {
        (0..5)
            .map(|o| (b[o] + (0..4).map(|i| w[o * 4 + i] * xs[t * 4 + i]).sum::<f64>()).max(0.0))
            .collect()
    };
    let (s0, s1) = (step(0), step(1));
    let m: Vec<f64> = s0.iter().zip(&s1).map(|(a, b)| a.max(*b)).collect();
    let hw = g.head.weight.to_vec().unwrap();
    let hb = g.head.bias.as_ref().unwrap().to_vec().unwrap();
    for o in 0..2 {
        let want = hb[o] + (0..5).map(|i| hw[o * 5 + i] * m[i]).sum::<f64>();
        assert!((y2[o] - want).abs() < 1e-12, "{} {want}", y2[o]);
    }
}

const SEQ: usize = 5;

kiln::network! {
    /// A sequence whose length and width are named constants.
    pub struct NamedSeq {
        input: [SEQ, EMBED],
        fc: Linear(HIDDEN),
        tanh,
        mean_over_time,
        head: Linear(HIDDEN, 2),
    }
}

#[test]
fn named_sequence_dimensions() {
    assert_eq!(NamedSeq::INPUTS, &[&[SEQ, EMBED][..]]);
    assert_eq!(NamedSeq::PARAMS, EMBED * HIDDEN + HIDDEN + HIDDEN * 2 + 2);
    let mut net = NamedSeq::<f64, Cpu>::init(&Cpu, &mut rng(61)).unwrap();
    let err = check_layer(&mut net, 2, 62).unwrap();
    assert!(err < TOL, "{err}");
}
