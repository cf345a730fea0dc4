//! The input gradient behind `examples/saliency.rs`: `∂s_c/∂x` of a class
//! score (before the softmax) of an untrained LeNet-5, from one backward pass
//! with `tape.input_grads = true` and a one-hot gradient on the logits,
//! checked against central differences in f64.

use kiln::prelude::*;
use kiln::testing::{numeric_grad, numeric_grad_small, random_input, rel_err2};

/// LeNet-5, declared once in `kiln::models` (see there).
use kiln::models::LeNet5 as LeNet;

/// `Σᵢ s_{cᵢ}(xᵢ)` evaluated at `xv` (two samples).
fn score(net: &LeNet<f64, Cpu>, xv: &[f64], classes: &[usize]) -> f64 {
    let x = Tensor::<S3<1, 28, 28>, f64>::from_slice(&Cpu, xv).unwrap();
    let logits = net.forward(&x).unwrap().to_vec().unwrap();
    classes
        .iter()
        .enumerate()
        .map(|(i, &c)| logits[i * 10 + c])
        .sum()
}

#[test]
fn saliency_is_the_gradient_of_the_class_score() {
    let mut net = LeNet::<f64, Cpu>::init(&Cpu, &mut rng(7)).unwrap();
    let xv = random_input(2 * 784, &mut rng(8));
    // A different class per sample: the batched backward must keep them apart.
    let classes = [3usize, 8];

    let x = Tensor::<S3<1, 28, 28>, f64>::from_slice(&Cpu, &xv).unwrap();
    let mut tape = net.tape().unwrap();
    tape.input_grads = true;
    net.forward_train(&x, &mut tape).unwrap();
    let mut onehot = vec![0.0; 20];
    for (i, &c) in classes.iter().enumerate() {
        onehot[i * 10 + c] = 1.0;
    }
    let d = Tensor::<S1<10>, f64>::from_slice(&Cpu, &onehot).unwrap();
    let mut grads = net.grads().unwrap();
    net.backward(&mut tape, &d, &mut grads).unwrap();
    let analytic = tape.grad_x.to_vec().unwrap();
    assert_eq!(analytic.len(), 2 * 784);

    let n4 = numeric_grad(&xv, |v| score(&net, v, &classes));
    let n2 = numeric_grad_small(&xv, |v| score(&net, v, &classes));
    let err = rel_err2(&analytic, &n4, &n2);
    assert!(
        err < 1e-6,
        "input gradient vs central differences: max relative error {err}"
    );

    // A saliency map that is zero everywhere would pass the comparison
    // vacuously: every image's map must have substance.
    for (i, g) in analytic.chunks_exact(784).enumerate() {
        let max = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let nonzero = g.iter().filter(|v| v.abs() > 1e-12).count();
        assert!(max > 1e-4, "sample {i}: largest |∂s/∂x| is {max}");
        assert!(
            nonzero > 392,
            "sample {i}: only {nonzero} of 784 pixels have a non-zero gradient"
        );
    }
}

#[test]
fn saliency_of_one_sample_does_not_depend_on_the_others() {
    // The example explains a whole batch with one backward pass; that is only
    // right if sample 0's gradient is the same alone and in a batch.
    let mut net = LeNet::<f64, Cpu>::init(&Cpu, &mut rng(9)).unwrap();
    let xv = random_input(3 * 784, &mut rng(10));
    let grad = |net: &mut LeNet<f64, Cpu>, xv: &[f64], n: usize| -> Vec<f64> {
        let x = Tensor::<S3<1, 28, 28>, f64>::from_slice(&Cpu, &xv[..n * 784]).unwrap();
        let mut tape = net.tape().unwrap();
        tape.input_grads = true;
        net.forward_train(&x, &mut tape).unwrap();
        let mut onehot = vec![0.0; n * 10];
        for i in 0..n {
            onehot[i * 10 + (i + 2) % 10] = 1.0;
        }
        let d = Tensor::<S1<10>, f64>::from_slice(&Cpu, &onehot).unwrap();
        let mut grads = net.grads().unwrap();
        net.backward(&mut tape, &d, &mut grads).unwrap();
        tape.grad_x.to_vec().unwrap()
    };
    let alone = grad(&mut net, &xv, 1);
    let batched = grad(&mut net, &xv, 3);
    let diff = alone
        .iter()
        .zip(&batched[..784])
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff < 1e-12,
        "sample 0's saliency changes with the batch: {diff}"
    );
}
