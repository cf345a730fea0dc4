//! A whole generated network trains the same on the CUDA device as on the CPU:
//! forward, loss, hand-derived backward (gradient agreement) and Adam steps,
//! through `kiln::network!` with nothing changed but the device value.
//!
//! The device is the host emulation by default, GPU 0 with `KILN_TEST_GPU=1`.

mod common;

use kiln::prelude::*;
use kiln_core::kernels::Kernels;
use kiln_cuda::Cuda;

kiln::network! {
    /// A small MLP with every activation kind the CUDA kernels implement.
    pub struct Mlp {
        input: [12],
        fc1: Linear(40),
        relu,
        fc2: Linear(33),
        tanh,
        fc3: Linear(5),
    }
}

fn device() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

/// (loss per step, fc1 weight gradient of the last step, final logits)
fn train<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<f64>, Vec<E>, Vec<E>) {
    let mut net = Mlp::<E, D>::init(dev, &mut rng(3)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 37;
    let xs: Vec<E> = (0..batch * 12)
        .map(|i| E::of(((i * 7919 % 101) as f64 / 50.0) - 1.0))
        .collect();
    let ys: Vec<u32> = (0..batch).map(|i| (i * 13 % 5) as u32).collect();
    let x = Tensor::<S1<12>, E, D>::from_slice(dev, &xs).unwrap();
    let y = Labels::<5, D>::new::<E>(dev, &ys).unwrap();
    let mut dlogits = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        losses.push(cross_entropy(logits, &y, Some(&mut dlogits)).unwrap().f64());
        net.backward(&mut tape, &dlogits, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let g = grads.fc1.weight.to_vec().unwrap();
    let logits = net.forward(&x).unwrap().to_vec().unwrap();
    (losses, g, logits)
}

fn agree<E: Elem>(tol: f64) {
    let dev = device();
    let (lc, gc, oc) = train::<E, Cpu>(&Cpu, 5);
    let (lg, gg, og) = train::<E, Cuda>(&dev, 5);
    let lc: Vec<E> = lc.iter().map(|v| E::of(*v)).collect();
    let lg: Vec<E> = lg.iter().map(|v| E::of(*v)).collect();
    println!("{}: losses cpu {lc:?} / cuda {lg:?}", E::NAME);
    common::check("loss per step", &lg, &lc, tol);
    common::check("fc1.weight gradient", &gg, &gc, tol);
    common::check("logits after 5 Adam steps", &og, &oc, tol);
    assert!(lg[4] < lg[0], "training does not reduce the loss");
}

#[test]
fn mlp_trains_like_on_the_cpu_f32() {
    agree::<f32>(1e-4);
}

#[test]
fn mlp_trains_like_on_the_cpu_f64() {
    agree::<f64>(1e-10);
}
