//! `backward_from`: the backward pass from a gradient placed at any named
//! node down to another node or to an input, without parameter gradients,
//! checked against central differences in f64 (`kiln::testing`) on a small
//! CNN, on graphs with fan-out, additions and concatenations, and on LeNet-5;
//! gradients at intermediate nodes against the full `backward`'s; the
//! tape's accessors by name; the errors.

use kiln::models::LeNet5;
use kiln::testing::{numeric_grad, numeric_grad_small, random_input, rel_err2};
use kiln::{rng, Cpu, GradMode, Shape, Tensor};

kiln::network! {
    /// Every layer kind `backward_from` supports in a LeNet-like chain.
    pub struct SmallCnn {
        input: [2, 6, 6],
        conv1: Conv2d(3, kernel = 3, padding = 1),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(4, kernel = 2),
        tanh,
        pool2: AvgPool2d(2),
        flatten,
        fc1: Linear(5),
        relu,
        fc2: Linear(3),
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

const TOL: f64 = 1e-6;

fn t<S: Shape>(batch: usize, v: &[f64]) -> Tensor<S, f64> {
    Tensor::from_vec(&Cpu, batch, v.to_vec()).unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central differences of `seed · f(x)` at `x0` with two steps
/// (`kiln::testing::H`, `H_SMALL`): the error against the better of the two,
/// as `check_layer` (a step that straddles a ReLU kink or a max-pool switch
/// spoils one estimate, rarely both).
fn fd_err(got: &[f64], x0: &[f64], mut f: impl FnMut(&[f64]) -> Vec<f64>, seed: &[f64]) -> f64 {
    let n1 = numeric_grad(x0, |v| dot(seed, &f(v)));
    let n2 = numeric_grad_small(x0, |v| dot(seed, &f(v)));
    rel_err2(got, &n1, &n2)
}

/// For each `from` node: `seed · activation(from)` as a function of the
/// input, its gradient by `backward_from(from → x)` against central
/// differences; the parameters' gradients are not even an argument.
#[test]
fn small_cnn_input_gradient_from_every_node_matches_finite_differences() {
    let mut net = SmallCnn::<f64, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let mut tape = net.tape().unwrap();
    let batch = 2;
    let x0 = random_input(batch * 72, &mut rng(2));
    net.forward_train(&t(batch, &x0), &mut tape).unwrap();
    let mut probe_tape = net.tape().unwrap();
    for from in [
        "fc2", "relu2", "fc1", "flatten1", "pool2", "tanh1", "conv2", "pool1", "relu1", "conv1",
    ] {
        let a = tape.activation(from).unwrap();
        assert_eq!(a.batch, batch);
        let seed = random_input(a.data.len(), &mut rng(3));
        net.backward_from(&mut tape, from, &seed, "x", GradMode::Plain)
            .unwrap();
        let got = tape.gradient("x").unwrap();
        assert_eq!((got.batch, got.dims), (batch, &[2usize, 6, 6][..]));
        let err = fd_err(
            &got.data,
            &x0,
            |v| {
                net.forward_with(&t(batch, v), &mut probe_tape).unwrap();
                probe_tape.activation(from).unwrap().data
            },
            &seed,
        );
        assert!(err < TOL, "from {from}: relative error {err}");
    }
}

/// Down to an intermediate node: the gradient `backward_from(fc2 → to)`
/// leaves at `to` is the full `backward`'s there (itself gradient-checked
/// in `tests/gradcheck.rs`), for every `to`; and the nodes before `to` are
/// not run (their gradient buffers keep what was there).
#[test]
fn gradient_at_intermediate_nodes_equals_the_full_backward() {
    let mut net = SmallCnn::<f64, Cpu>::init(&Cpu, &mut rng(4)).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    let batch = 3;
    let x0 = random_input(batch * 72, &mut rng(5));
    net.forward_train(&t(batch, &x0), &mut tape).unwrap();
    let dy = random_input(batch * 3, &mut rng(6));
    net.backward(&mut tape, &t(batch, &dy), &mut grads).unwrap();
    let names = [
        "relu2", "fc1", "flatten1", "pool2", "tanh1", "conv2", "pool1", "relu1", "conv1",
    ];
    let full: Vec<Vec<f64>> = names
        .iter()
        .map(|n| tape.gradient(n).unwrap().data)
        .collect();
    for (i, to) in names.iter().enumerate() {
        // Clear every buffer by a backward_from that reaches only fc2's input.
        net.backward_from(
            &mut tape,
            "fc2",
            &vec![0.0; batch * 3],
            "relu2",
            GradMode::Plain,
        )
        .unwrap();
        net.backward_from(&mut tape, "fc2", &dy, to, GradMode::Plain)
            .unwrap();
        let got = tape.gradient(to).unwrap().data;
        assert_eq!(got, full[i], "gradient at {to}");
    }
    // fc2 → relu2 writes only relu2's gradient: conv1's keeps the last value.
    let before = tape.gradient("conv1").unwrap().data;
    net.backward_from(
        &mut tape,
        "fc2",
        &vec![1.0; batch * 3],
        "relu2",
        GradMode::Plain,
    )
    .unwrap();
    assert_eq!(tape.gradient("conv1").unwrap().data, before);
    assert_eq!(
        tape.gradient("relu2").unwrap().data,
        (0..batch)
            .flat_map(|_| {
                let w = net.fc2.weight.to_vec().unwrap();
                (0..5).map(move |i| (0..3).map(|o| w[o * 5 + i]).sum::<f64>())
            })
            .collect::<Vec<f64>>()
    );
}

/// Graphs: an addition that reads the input (residual), a concatenation
/// reading one value twice, an addition of a value to itself, two inputs.
#[test]
fn graphs_with_fan_out_match_finite_differences() {
    let mut net = Residual::<f64, Cpu>::init(&Cpu, &mut rng(7)).unwrap();
    let mut tape = net.tape().unwrap();
    let x0 = random_input(2 * 6, &mut rng(8));
    net.forward_train(&t(2, &x0), &mut tape).unwrap();
    let seed = random_input(2 * 3, &mut rng(9));
    net.backward_from(&mut tape, "head", &seed, "x", GradMode::Plain)
        .unwrap();
    let got = tape.gradient("x").unwrap().data;
    let mut p = net.tape().unwrap();
    let err = fd_err(
        &got,
        &x0,
        |v| {
            net.forward_with(&t(2, v), &mut p).unwrap();
            p.activation("head").unwrap().data
        },
        &seed,
    );
    assert!(err < TOL, "{err}");

    let mut net = TwoHeads::<f64, Cpu>::init(&Cpu, &mut rng(10)).unwrap();
    let mut tape = net.tape().unwrap();
    let (a0, b0) = (random_input(4, &mut rng(11)), random_input(3, &mut rng(12)));
    net.forward_train(&t(1, &a0), &t(1, &b0), &mut tape)
        .unwrap();
    let mut p = net.tape().unwrap();
    for (from, n) in [("head", 2), ("sigmoid1", 5), ("j", 13)] {
        let seed = random_input(n, &mut rng(13));
        for (to, x0) in [("a", &a0), ("b", &b0)] {
            net.backward_from(&mut tape, from, &seed, to, GradMode::Plain)
                .unwrap();
            let got = tape.gradient(to).unwrap().data;
            let err = fd_err(
                &got,
                x0,
                |v| {
                    let (a, b) = if to == "a" {
                        (v, &b0[..])
                    } else {
                        (&a0[..], v)
                    };
                    net.forward_with(&t(1, a), &t(1, b), &mut p).unwrap();
                    p.activation(from).unwrap().data
                },
                &seed,
            );
            assert!(err < TOL, "{from} → {to}: {err}");
        }
    }
}

/// LeNet-5 in f64: from the class score `fc3[7]` (before any softmax) and
/// from a random gradient at `conv2`, down to the image.
#[test]
fn lenet_input_gradient_matches_finite_differences() {
    let mut net = LeNet5::<f64, Cpu>::init(&Cpu, &mut rng(14)).unwrap();
    let mut tape = net.tape().unwrap();
    let x0 = random_input(784, &mut rng(15));
    net.forward_train(&t(1, &x0), &mut tape).unwrap();
    let mut score = vec![0.0; 10];
    score[7] = 1.0;
    let conv2 = random_input(1600, &mut rng(16));
    let mut p = net.tape().unwrap();
    for (from, seed) in [("fc3", &score), ("conv2", &conv2)] {
        net.backward_from(&mut tape, from, seed, "x", GradMode::Plain)
            .unwrap();
        let got = tape.gradient("x").unwrap().data;
        let err = fd_err(
            &got,
            &x0,
            |v| {
                net.forward_with(&t(1, v), &mut p).unwrap();
                p.activation(from).unwrap().data
            },
            seed,
        );
        assert!(err < TOL, "{from}: {err}");
    }
}

/// Unknown names, `to` after `from` and a seed of the wrong size are errors
/// that name the thing at fault.
#[test]
fn errors_name_the_node() {
    let mut net = SmallCnn::<f64, Cpu>::init(&Cpu, &mut rng(17)).unwrap();
    let mut tape = net.tape().unwrap();
    net.forward_train(&t(1, &[0.5; 72]), &mut tape).unwrap();
    let e = net
        .backward_from(&mut tape, "fc9", &[0.0; 3], "x", GradMode::Plain)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`fc9` is not a node of SmallCnn") && e.contains("conv1"),
        "{e}"
    );
    let e = net
        .backward_from(&mut tape, "conv1", &[0.0; 108], "fc1", GradMode::Plain)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`fc1` does not come before `conv1`"), "{e}");
    let e = net
        .backward_from(&mut tape, "fc2", &[0.0; 4], "x", GradMode::Plain)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the seed has 4 values but node `fc2` holds 1 × [3] = 3"),
        "{e}"
    );
    let e = tape.activation("nope").unwrap_err().to_string();
    assert!(e.contains("`nope` is not a node of SmallCnn"), "{e}");
}
