//! What can only be known at run time — the batch size, the values — fails
//! with a clear error, never a panic, and leaves the network usable.

use kiln::prelude::*;

kiln::network! {
    pub struct Pair {
        input a: [3],
        input b: [3],
        output a + b |> fc: Linear(2);
    }
}

kiln::network! {
    pub struct Small {
        input: [3],
        fc: Linear(2),
    }
}

#[test]
fn inputs_with_different_batch_sizes() {
    let mut net = Pair::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let a = Tensor::<S1<3>>::from_slice(&Cpu, &[0.0; 6]).unwrap();
    let b = Tensor::<S1<3>>::from_slice(&Cpu, &[0.0; 9]).unwrap();
    let mut tape = net.tape().unwrap();
    let e = net.forward_train(&a, &b, &mut tape).unwrap_err();
    assert_eq!(
        e.to_string(),
        "batch size mismatch in forward: a has 2 samples but b has 3"
    );
    let e = net.forward(&a, &b).unwrap_err();
    assert!(e.to_string().contains("a has 2 samples but b has 3"));
}

#[test]
fn logits_and_labels_of_different_batch_sizes() {
    let net = Small::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let x = Tensor::<S1<3>>::from_slice(&Cpu, &[0.5; 3 * 128]).unwrap();
    let logits = net.forward(&x).unwrap();
    let y = Labels::<2>::new::<f32>(&Cpu, &[0; 64]).unwrap();
    let e = cross_entropy(&logits, &y, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "batch size mismatch in cross_entropy: logits has 128 samples but labels has 64"
    );
}

#[test]
fn backward_with_a_gradient_of_another_batch() {
    let mut net = Small::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let x = Tensor::<S1<3>>::from_slice(&Cpu, &[0.5; 12]).unwrap();
    net.forward_train(&x, &mut tape).unwrap();
    let dy = Tensor::<S1<2>>::from_slice(&Cpu, &[1.0; 6]).unwrap();
    let e = net.backward(&mut tape, &dy, &mut grads).unwrap_err();
    assert_eq!(
        e.to_string(),
        "batch size mismatch in backward: d_y has 3 samples but forward_train's output has 4"
    );
    // Still usable with the right gradient.
    let dy = Tensor::<S1<2>>::from_slice(&Cpu, &[1.0; 8]).unwrap();
    net.backward(&mut tape, &dy, &mut grads).unwrap();
}

#[test]
fn a_nan_loss_is_an_error() {
    let net = Small::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let x = Tensor::<S1<3>>::from_slice(&Cpu, &[f32::NAN, 0.0, 1.0]).unwrap();
    let logits = net.forward(&x).unwrap();
    let y = Labels::<2>::new::<f32>(&Cpu, &[1]).unwrap();
    let e = cross_entropy(&logits, &y, None).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("non-finite value in cross_entropy loss"),
        "{e}"
    );
}

#[test]
fn a_short_last_batch_reuses_the_buffers() {
    let mut net = Small::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut dy = Tensor::<S1<2>>::empty(&Cpu).unwrap();
    for n in [128usize, 37, 128, 1] {
        let x = Tensor::<S1<3>>::from_vec(&Cpu, n, vec![0.25; n * 3]).unwrap();
        let y = net.forward_train(&x, &mut tape).unwrap();
        assert_eq!(y.batch(), n);
        let labels = Labels::<2>::new::<f32>(&Cpu, &vec![1; n]).unwrap();
        cross_entropy(y, &labels, Some(&mut dy)).unwrap();
        net.backward(&mut tape, &dy, &mut grads).unwrap();
    }
}
