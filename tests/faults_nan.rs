//! A NaN reaching a network is never hidden (issue 13): ReLU, max pooling and
//! the other comparing kernels keep it as PyTorch does, so an all-NaN batch
//! gives a non-finite-loss error instead of a finite loss (it was 2.259 while
//! `relu(NaN)` was 0), a NaN weight cannot train unnoticed, and anomaly
//! detection names the first layer whose output holds the NaN.

use kiln::prelude::*;

kiln::network! {
    pub struct Mlp {
        input: [6],
        fc1: Linear(8),
        relu,
        fc2: Linear(8),
        relu,
        fc3: Linear(3),
    }
}

kiln::network! {
    pub struct Cnn {
        input: [1, 4, 4],
        conv: Conv2d(2, kernel = 3, padding = 1),
        relu,
        pool: MaxPool2d(2),
        flatten,
        fc: Linear(3),
    }
}

fn batch(n: usize, nan: bool) -> Tensor<S1<6>> {
    let v: Vec<f32> = (0..n * 6)
        .map(|i| {
            if nan {
                f32::NAN
            } else {
                (i % 7) as f32 * 0.3 - 0.9
            }
        })
        .collect();
    Tensor::from_vec(&Cpu, n, v).unwrap()
}

fn is_non_finite_loss(e: &kiln::Error) -> bool {
    e.to_string()
        .starts_with("non-finite value in cross_entropy loss")
}

#[test]
fn an_all_nan_batch_gives_a_nan_loss() {
    let mut net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let labels = Labels::<3>::new::<f32>(&Cpu, &[0, 1, 2, 0]).unwrap();
    // A finite batch: a finite loss.
    let y = net.forward(&batch(4, false)).unwrap();
    assert!(cross_entropy(&y, &labels, None).unwrap().is_finite());
    // The all-NaN batch: every output NaN, the loss an error.
    let y = net.forward(&batch(4, true)).unwrap();
    assert!(y.to_vec().unwrap().iter().all(|v| v.is_nan()));
    let e = cross_entropy(&y, &labels, None).unwrap_err();
    assert!(is_non_finite_loss(&e), "{e}");
    // Training mode too, and the network is still usable afterwards.
    let mut tape = net.tape().unwrap();
    let y = net.forward_train(&batch(4, true), &mut tape).unwrap();
    assert!(y.to_vec().unwrap().iter().all(|v| v.is_nan()));
    let y = net.forward(&batch(4, false)).unwrap();
    assert!(cross_entropy(&y, &labels, None).unwrap().is_finite());
}

#[test]
fn a_nan_image_gives_a_nan_loss_through_relu_and_max_pooling() {
    let net = Cnn::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let mut v = vec![0.25f32; 2 * 16];
    v[16 + 5] = f32::NAN; // one pixel of the second image
    let x = Tensor::<S3<1, 4, 4>>::from_vec(&Cpu, 2, v).unwrap();
    let y = net.forward(&x).unwrap().to_vec().unwrap();
    assert!(y[..3].iter().all(|v| v.is_finite()), "{y:?}");
    assert!(y[3..].iter().all(|v| v.is_nan()), "{y:?}");
    let labels = Labels::<3>::new::<f32>(&Cpu, &[0, 1]).unwrap();
    let y = net.forward(&x).unwrap();
    let e = cross_entropy(&y, &labels, None).unwrap_err();
    assert!(is_non_finite_loss(&e), "{e}");
}

#[test]
fn a_nan_weight_is_caught_and_named() {
    let mut net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let mut w = net.fc1.weight.to_vec().unwrap();
    w[3 * 6 + 2] = f32::NAN; // hidden unit 3 of fc1
    net.fc1.weight.copy_from_slice(&w).unwrap();
    let labels = Labels::<3>::new::<f32>(&Cpu, &[0, 1, 2, 0]).unwrap();
    let mut tape = net.tape().unwrap();
    let mut dy = Tensor::<S1<3>>::empty(&Cpu).unwrap();
    // Without anomaly detection the step fails at the loss: the NaN unit is
    // not zeroed by the ReLU after it.
    let y = net.forward_train(&batch(4, false), &mut tape).unwrap();
    let e = cross_entropy(y, &labels, Some(&mut dy)).unwrap_err();
    assert!(is_non_finite_loss(&e), "{e}");
    // With it, the forward pass names fc1, the first layer with a NaN
    // output, and the element (unit 3).
    tape.ctx.detect_anomaly = true;
    let e = net
        .forward_train(&batch(4, false), &mut tape)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "non-finite value in forward output of `fc1: Linear(8)` (element 3 of sample 0)"
        ),
        "{e}"
    );
    // The backward pass of a NaN reaching the gradient through the ReLU
    // names the layer too (a finite forward, a NaN arriving at fc3).
    let mut net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    tape.ctx.detect_anomaly = true;
    net.forward_train(&batch(1, false), &mut tape).unwrap();
    let dy = Tensor::<S1<3>>::from_slice(&Cpu, &[0.0, f32::NAN, 0.0]).unwrap();
    let e = net
        .backward(&mut tape, &dy, &mut grads)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "non-finite value in backward: gradient arriving at the output of `fc3: Linear(3)`"
        ),
        "{e}"
    );
}
