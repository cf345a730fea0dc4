//! Anomaly detection: with `tape.ctx.detect_anomaly` on, the first NaN or
//! infinity is reported with the layer and the pass where it appeared.

use kiln::prelude::*;

kiln::network! {
    pub struct Net {
        input: [3],
        fc1: Linear(4),
        relu,
        fc2: Linear(4),
        tanh,
        fc3: Linear(2),
    }
}

#[test]
fn forward_names_the_first_layer_with_a_nan() {
    let mut net = Net::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let mut w = net.fc2.weight.to_vec().unwrap();
    w[5] = f32::NAN;
    net.fc2.weight.copy_from_slice(&w).unwrap();
    let x = Tensor::<S1<3>>::from_slice(&Cpu, &[0.5, -0.25, 1.0]).unwrap();
    let mut tape = net.tape().unwrap();
    // Off by default: the NaN flows through silently…
    assert!(net
        .forward_train(&x, &mut tape)
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .any(|v| v.is_nan()));
    // …and on, the error names the layer and the pass.
    tape.ctx.detect_anomaly = true;
    let e = net.forward_train(&x, &mut tape).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "non-finite value in forward output of `fc2: Linear(4)` (element 1 of sample 0)"
        ),
        "{e}"
    );
}

#[test]
fn backward_names_the_layer_a_bad_gradient_reaches() {
    let mut net = Net::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    tape.ctx.detect_anomaly = true;
    let x = Tensor::<S1<3>>::from_slice(&Cpu, &[0.5, -0.25, 1.0]).unwrap();
    net.forward_train(&x, &mut tape).unwrap();
    let dy = Tensor::<S1<2>>::from_slice(&Cpu, &[1.0, f32::INFINITY]).unwrap();
    let e = net
        .backward(&mut tape, &dy, &mut grads)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "non-finite value in backward: gradient arriving at the output of `fc3: Linear(2)`"
        ),
        "{e}"
    );
}
