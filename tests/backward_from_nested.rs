//! `backward_from` through nested networks: a residual block with batch
//! norm written once with `network!` and used twice in a ResNet, so the
//! outer network's `backward_from` calls the block's generated `InputGrad`.
//! The block's `backward_input` against its full `backward`'s `dx` (f64, to
//! 1e-12), `backward_from` against central differences in evaluation mode
//! (trained running statistics) and training mode, and Grad-CAM at a
//! nested block's output.

use kiln::testing::{check_input_grad, numeric_grad, numeric_grad_small, random_input, rel_err2};
use kiln::{rng, Cpu, GradMode, Shape, Tensor};

kiln::network! {
    /// A basic residual block: conv – BN – ReLU – conv – BN, plus the input.
    pub struct BnBlock {
        input x: [3, 6, 6],
        let h = x |> c1: Conv2d(3, kernel = 3, padding = 1, bias = false) |> n1: BatchNorm2d |> relu
                  |> c2: Conv2d(3, kernel = 3, padding = 1, bias = false) |> n2: BatchNorm2d;
        output relu(h + x);
    }
}

kiln::network! {
    /// A stem, two nested blocks, global pooling, a linear head.
    pub struct NestedResNet {
        input: [1, 6, 6],
        stem: Conv2d(3, kernel = 3, padding = 1, bias = false),
        bn0: BatchNorm2d,
        relu,
        b1: BnBlock -> [3, 6, 6],
        b2: BnBlock -> [3, 6, 6],
        gap: GlobalAvgPool,
        fc: Linear(3),
    }
}

const FD: f64 = 1e-6;

fn t<S: Shape>(batch: usize, v: &[f64]) -> Tensor<S, f64> {
    Tensor::from_vec(&Cpu, batch, v.to_vec()).unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A network whose batch norms have seen data (running statistics moved
/// off (0, 1)) and have random γ, β.
fn trained() -> NestedResNet<f64, Cpu> {
    let mut net = NestedResNet::<f64, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let mut tape = net.tape().unwrap();
    for i in 0..3 {
        net.forward_train(&t(4, &random_input(4 * 36, &mut rng(10 + i))), &mut tape)
            .unwrap();
    }
    let mut r = rng(2);
    for bn in [
        &mut net.bn0,
        &mut net.b1.n1,
        &mut net.b1.n2,
        &mut net.b2.n1,
        &mut net.b2.n2,
    ] {
        bn.weight.copy_from_slice(&random_input(3, &mut r)).unwrap();
        bn.bias.copy_from_slice(&random_input(3, &mut r)).unwrap();
    }
    net
}

#[test]
fn the_nested_blocks_input_gradient_equals_its_full_backward() {
    let mut net = trained();
    for train in [false, true] {
        let err = check_input_grad(&mut net.b1, 2, 3, train).unwrap();
        assert!(err < 1e-12, "train {train}: {err:e}");
    }
}

#[test]
fn nested_resnet_backward_from_matches_finite_differences_in_both_modes() {
    let mut net = trained();
    let batch = 2;
    let x0 = random_input(batch * 36, &mut rng(4));
    let (mut tape, mut probe) = (net.tape().unwrap(), net.tape().unwrap());
    net.forward_with(&t(batch, &x0), &mut tape).unwrap();
    for from in ["fc", "b2", "b1"] {
        let s = random_input(tape.activation(from).unwrap().data.len(), &mut rng(5));
        net.backward_from(&mut tape, from, &s, "x", GradMode::Plain)
            .unwrap();
        let got = tape.gradient("x").unwrap().data;
        let mut f = |v: &[f64]| {
            net.forward_with(&t(batch, v), &mut probe).unwrap();
            dot(&s, &probe.activation(from).unwrap().data)
        };
        let (n1, n2) = (numeric_grad(&x0, &mut f), numeric_grad_small(&x0, &mut f));
        let err = rel_err2(&got, &n1, &n2);
        println!("NestedResNet eval, {from} → x: {err:.2e}");
        assert!(err < FD, "eval, from {from}: {err}");
    }
    let seed = random_input(batch * 3, &mut rng(6));
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
    println!("NestedResNet train, fc → x: {err:.2e}");
    assert!(err < FD, "train: {err}");
}

/// Down to a nested block's output: the gradient `backward_from(fc → b1)`
/// leaves there is the full `backward`'s (after the same evaluation-mode
/// forward), and Grad-CAM at `b1` is a nonnegative 6×6 map, not all zero.
#[test]
fn gradient_at_a_nested_block_equals_the_full_backward_and_feeds_grad_cam() {
    let net = trained();
    let batch = 2;
    let x0 = random_input(batch * 36, &mut rng(7));
    let seed = random_input(batch * 3, &mut rng(8));
    let mut tape = net.tape().unwrap();
    net.forward_with(&t(batch, &x0), &mut tape).unwrap();
    net.backward_from(&mut tape, "fc", &seed, "b1", GradMode::Plain)
        .unwrap();
    let from = tape.gradient("b1").unwrap();
    let mut grads = net.grads().unwrap();
    net.backward(&mut tape, &t(batch, &seed), &mut grads)
        .unwrap();
    let full = tape.gradient("b1").unwrap();
    assert_eq!(from.data.len(), batch * 108);
    for (a, b) in from.data.iter().zip(&full.data) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    let act = tape.activation("b1").unwrap();
    let cam = kiln::vis::grad_cam(&act, &from, 0).unwrap();
    assert_eq!((cam.h, cam.w), (6, 6));
    assert!(cam.data.iter().all(|&v| v >= 0.0));
    assert!(cam.data.iter().any(|&v| v > 0.0));
}
