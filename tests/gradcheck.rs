//! Gradient checks of whole generated networks: for each network form the
//! macro accepts (a chain, a residual graph, a two-input two-output concat
//! graph, a nested network, a weight-shared layer), the generated backward
//! pass is compared with central differences in f64 for every input element
//! and every parameter. The criterion is a relative error below 1e-6.

use kiln::prelude::*;
use kiln::testing::{check_layer, numeric_grad, random_input, rel_err};
use kiln::{ParamMut, Path};

kiln::network! {
    /// A chain with every activation and both kinds of Linear.
    pub struct Chain {
        input: [6],
        fc1: Linear(8),
        tanh,
        fc2: Linear(8, 7, bias = false),
        sigmoid,
        fc3: Linear(5),
        leaky_relu,
        fc4: Linear(4),
        relu,
        LeakyRelu(0.2),
        fc5: Linear(3),
        softmax,
    }
}

kiln::network! {
    /// A residual block in graph form: the input is added back.
    pub struct Residual {
        input x: [6],
        let h = x |> fc1: Linear(6) |> tanh |> fc2: Linear(6);
        output relu(h + x) |> head: Linear(3);
    }
}

kiln::network! {
    /// Two inputs, two outputs, a concatenation and a value read three times.
    pub struct TwoHeads {
        input a: [4],
        input b: [3],
        let h = a |> enc: Linear(5) |> tanh;
        let j = concat(h, b, h);
        output logits = j |> head: Linear(2);
        output aux = h + h |> sigmoid;
    }
}

kiln::network! {
    /// A network that uses `Residual` (another invocation) as a layer twice
    /// over: once as a field and once through `Chain`'s shapes.
    pub struct Nested {
        input: [6],
        block: Residual -> [3],
        fc: Linear(6),
        tanh,
        again: Residual -> [3],
    }
}

kiln::network! {
    /// A siamese encoder: `enc` is applied to both inputs with the same weights.
    pub struct Siamese {
        input left: [5],
        input right: [5],
        layer enc = Linear(4);
        let l = left |> enc |> tanh;
        let r = right |> enc |> tanh;
        output l + r |> out: Linear(2);
    }
}

kiln::network! {
    /// GELU (exact and tanh) and PReLU (shared, per channel of an image,
    /// per feature) in one generated network.
    pub struct NewActivations {
        input: [2, 3, 3],
        conv: Conv2d(3, kernel = 3, padding = 1),
        p1: PReLU(3),
        gelu,
        flatten,
        fc1: Linear(7),
        p2: PReLU,
        Gelu(approximate = "tanh"),
        fc2: Linear(4),
        p3: PReLU(num_parameters = 4, init = 0.1),
    }
}

kiln::network! {
    /// LayerNorm in each form, between GELU layers.
    pub struct Normed {
        input: [6],
        fc1: Linear(8),
        ln1: LayerNorm,
        gelu,
        fc2: Linear(5),
        ln2: LayerNorm(5, bias = false, eps = 1e-3),
        Gelu(approximate = "tanh"),
        fc3: Linear(4),
        ln3: LayerNorm(elementwise_affine = false),
        fc4: Linear(3),
    }
}

kiln::network! {
    /// L2Normalize at every position of a sequence, on a vector, and with an
    /// `eps` above every row's norm (the clamped branch: `y = x/ε`).
    pub struct L2Normed {
        input: [3, 4],
        fc1: Linear(5),
        L2Normalize,
        tanh,
        flatten,
        fc2: Linear(6),
        L2Normalize(eps = 100.0),
        fc3: Linear(3),
        l2_normalize(eps = 1e-6),
    }
}

const TOL: f64 = 1e-6;

fn t<S: Shape>(v: &[f64]) -> Tensor<S, f64> {
    Tensor::from_slice(&Cpu, v).unwrap()
}

#[test]
fn chain() {
    let mut net = Chain::<f64, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let err = check_layer(&mut net, 3, 7).unwrap();
    assert!(err < TOL, "{err}");
}

#[test]
fn new_activations() {
    let mut net = NewActivations::<f64, Cpu>::init(&Cpu, &mut rng(11)).unwrap();
    // Slopes away from their initial value, so a swapped slope would show.
    net.p1.weight.copy_from_slice(&[0.3, -0.2, 0.7]).unwrap();
    let err = check_layer(&mut net, 3, 12).unwrap();
    assert!(err < TOL, "{err}");
    // conv 3·2·9 + 3, PReLU 3, fc1 (27·7 + 7), PReLU 1, fc2 (7·4 + 4), PReLU 4.
    assert_eq!(NewActivations::PARAMS, 57 + 3 + 196 + 1 + 32 + 4);
    let mut names = Vec::new();
    net.visit(&Path::ROOT, &mut |p, _| names.push(p.to_string()));
    assert!(names.contains(&"p1.weight".to_string()) && names.contains(&"p3.weight".to_string()));
    assert_eq!(net.p3.weight.to_vec().unwrap(), vec![0.1; 4]);
}

#[test]
fn layer_norm_network() {
    let mut net = Normed::<f64, Cpu>::init(&Cpu, &mut rng(13)).unwrap();
    // γ and β away from 1 and 0, so a dropped or swapped parameter would show.
    let mut r = rng(14);
    let w = random_input(8, &mut r);
    net.ln1
        .weight
        .as_mut()
        .unwrap()
        .copy_from_slice(&w)
        .unwrap();
    let b = random_input(8, &mut r);
    net.ln1.bias.as_mut().unwrap().copy_from_slice(&b).unwrap();
    let err = check_layer(&mut net, 3, 15).unwrap();
    assert!(err < TOL, "{err}");
    // fc1 56, ln1 16, fc2 45, ln2 5 (weight only), fc3 24, ln3 0, fc4 15.
    assert_eq!(Normed::PARAMS, 56 + 16 + 45 + 5 + 24 + 15);
    let mut names = Vec::new();
    net.visit(&Path::ROOT, &mut |p, _| names.push(p.to_string()));
    let ln: Vec<&String> = names.iter().filter(|n| n.starts_with("ln")).collect();
    assert_eq!(ln, ["ln1.weight", "ln1.bias", "ln2.weight"]);
}

#[test]
fn l2_normalize_network() {
    let mut net = L2Normed::<f64, Cpu>::init(&Cpu, &mut rng(16)).unwrap();
    let err = check_layer(&mut net, 3, 17).unwrap();
    println!("L2Normed gradcheck: {err:.2e}");
    assert!(err < TOL, "{err}");
    // Every output row has norm 1; no parameters of its own.
    let x = Tensor::<S2<3, 4>, f64>::from_vec(&Cpu, 2, random_input(24, &mut rng(18))).unwrap();
    let y = net.forward(&x).unwrap().to_vec().unwrap();
    for row in y.chunks(3) {
        assert!((row.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-15);
    }
    assert_eq!(L2Normed::PARAMS, (4 * 5 + 5) + (15 * 6 + 6) + (6 * 3 + 3));
    // `backward_from` (each L2Normalize's `InputGrad`): the input gradient
    // of `seed · fc3(x)` against central differences.
    let mut tape = net.tape().unwrap();
    let x0 = random_input(2 * 12, &mut rng(19));
    let xt = |v: &[f64]| Tensor::<S2<3, 4>, f64>::from_vec(&Cpu, 2, v.to_vec()).unwrap();
    net.forward_train(&xt(&x0), &mut tape).unwrap();
    let seed = random_input(2 * 3, &mut rng(20));
    net.backward_from(&mut tape, "fc3", &seed, "x", kiln::GradMode::Plain)
        .unwrap();
    let got = tape.gradient("x").unwrap().data;
    let mut probe = net.tape().unwrap();
    let num = numeric_grad(&x0, |v| {
        net.forward_with(&xt(v), &mut probe).unwrap();
        let a = probe.activation("fc3").unwrap().data;
        a.iter().zip(&seed).map(|(p, q)| p * q).sum()
    });
    let err = rel_err(&got, &num);
    println!("L2Normed backward_from fc3 → x: {err:.2e}");
    assert!(err < TOL, "{err}");
}

#[test]
fn residual_graph() {
    let mut net = Residual::<f64, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    let err = check_layer(&mut net, 4, 8).unwrap();
    assert!(err < TOL, "{err}");
}

#[test]
fn nested_network() {
    let mut net = Nested::<f64, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    let err = check_layer(&mut net, 2, 9).unwrap();
    assert!(err < TOL, "{err}");
    assert_eq!(Nested::PARAMS, 2 * Residual::PARAMS + 3 * 6 + 6);
}

/// Flattens every parameter of a module (in visiting order).
fn params<M: Module<f64, Cpu>>(m: &M) -> Vec<f64> {
    let mut v = Vec::new();
    m.visit(&Path::ROOT, &mut |_, p| {
        v.extend_from_slice(&p.value[..p.numel])
    });
    v
}

/// Writes back the values produced by `params`.
fn set_params<M: Module<f64, Cpu>>(m: &mut M, v: &[f64]) {
    let mut i = 0;
    m.visit_mut(&Path::ROOT, &mut |_, p: ParamMut<'_, f64, Cpu>, _| {
        p.value[..p.numel].copy_from_slice(&v[i..i + p.numel]);
        i += p.numel;
    });
}

/// Gradients flattened in the same order as `params`.
fn grads<M: Module<f64, Cpu>>(m: &mut M, g: &M::Grads) -> Vec<f64> {
    let mut v = Vec::new();
    m.visit_grads(g, &Path::ROOT, &mut |_, p| {
        v.extend_from_slice(&p.grad.unwrap()[..p.numel])
    });
    v
}

#[test]
fn two_inputs_two_outputs_with_concat_and_fan_out() {
    let mut r = rng(4);
    let n = 3;
    let a = random_input(n * 4, &mut r);
    let b = random_input(n * 3, &mut r);
    let r1 = random_input(n * 2, &mut r);
    let r2 = random_input(n * 5, &mut r);
    let mut net = TwoHeads::<f64, Cpu>::init(&Cpu, &mut r).unwrap();
    let dot = |x: &Tensor<S1<2>, f64>, y: &Tensor<S1<5>, f64>| -> f64 {
        let (x, y) = (x.to_vec().unwrap(), y.to_vec().unwrap());
        x.iter().zip(&r1).map(|(p, q)| p * q).sum::<f64>()
            + y.iter().zip(&r2).map(|(p, q)| p * q).sum::<f64>()
    };

    let mut tape = net.tape().unwrap();
    tape.input_grads = true;
    let mut g = net.grads().unwrap();
    net.forward_train(&t(&a), &t(&b), &mut tape).unwrap();
    net.backward(&mut tape, &t(&r1), &t(&r2), &mut g).unwrap();
    let (da, db) = (tape.grad_a.to_vec().unwrap(), tape.grad_b.to_vec().unwrap());
    let dp = grads(&mut net, &g);

    let f = |net: &TwoHeads<f64, Cpu>, a: &[f64], b: &[f64]| {
        let (o1, o2) = net.forward(&t(a), &t(b)).unwrap();
        dot(&o1, &o2)
    };
    assert!(rel_err(&da, &numeric_grad(&a, |v| f(&net, v, &b))) < TOL);
    assert!(rel_err(&db, &numeric_grad(&b, |v| f(&net, &a, v))) < TOL);
    let p0 = params(&net);
    let num = numeric_grad(&p0, |v| {
        set_params(&mut net, v);
        f(&net, &a, &b)
    });
    set_params(&mut net, &p0);
    let err = rel_err(&dp, &num);
    assert!(err < TOL, "{err}");
}

#[test]
fn shared_weights_get_the_sum_of_both_uses() {
    let mut r = rng(5);
    let n = 2;
    let a = random_input(n * 5, &mut r);
    let b = random_input(n * 5, &mut r);
    let r1 = random_input(n * 2, &mut r);
    let mut net = Siamese::<f64, Cpu>::init(&Cpu, &mut r).unwrap();
    // One weight matrix, not two.
    assert_eq!(Siamese::PARAMS, 5 * 4 + 4 + 4 * 2 + 2);
    let mut tape = net.tape().unwrap();
    tape.input_grads = true;
    let mut g = net.grads().unwrap();
    net.forward_train(&t(&a), &t(&b), &mut tape).unwrap();
    net.backward(&mut tape, &t(&r1), &mut g).unwrap();
    let dp = grads(&mut net, &g);
    let da = tape.grad_left.to_vec().unwrap();

    let f = |net: &Siamese<f64, Cpu>, a: &[f64]| -> f64 {
        let o = net.forward(&t(a), &t(&b)).unwrap().to_vec().unwrap();
        o.iter().zip(&r1).map(|(p, q)| p * q).sum()
    };
    assert!(rel_err(&da, &numeric_grad(&a, |v| f(&net, v))) < TOL);
    let p0 = params(&net);
    let num = numeric_grad(&p0, |v| {
        set_params(&mut net, v);
        f(&net, &a)
    });
    set_params(&mut net, &p0);
    let err = rel_err(&dp, &num);
    assert!(err < TOL, "{err}");

    // A second backward overwrites (does not accumulate into) the gradients.
    net.backward(&mut tape, &t(&r1), &mut g).unwrap();
    assert_eq!(grads(&mut net, &g), dp);
}

/// Shapes are readable without naming the element type or device: `<Chain>`
/// is `Chain<f32, Cpu>`, a concrete type, so its constants work in const
/// contexts, array lengths and const generic arguments of other code.
const CHAIN_OUT: usize = <Chain>::OUTPUTS[0][0];
struct UsesChainShape {
    logits: [f32; <Chain>::OUTPUTS[0][0]],
    layer: kiln::layers::Linear<f32, Cpu, { <Chain>::OUTPUTS[0][0] }, 2>,
}

#[test]
fn shapes_are_non_generic_constants() {
    assert_eq!(CHAIN_OUT, 3);
    let u = UsesChainShape {
        logits: [0.0; 3],
        layer: kiln::layers::Linear::build(&Cpu, &mut rng(0), Default::default()).unwrap(),
    };
    assert_eq!(u.logits.len(), 3);
    assert_eq!(u.layer.weight.shape(), vec![1, 2, 3]);
}

#[test]
fn summary_and_constants() {
    assert_eq!(Chain::INPUTS, &[&[6usize][..]]);
    assert_eq!(TwoHeads::OUTPUTS, &[&[2usize][..], &[5usize][..]]);
    let s = Chain::summary();
    assert!(
        s.contains("fc2") && s.contains("Linear(8, 7, bias = false)"),
        "{s}"
    );
    assert!(
        s.contains(&format!("total parameters: {}", Chain::PARAMS)),
        "{s}"
    );
    assert_eq!(
        Chain::PARAMS,
        6 * 8 + 8 + 8 * 7 + 7 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3
    );
}
