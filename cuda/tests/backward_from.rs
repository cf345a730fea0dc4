//! `backward_from` on the CUDA device matches the CPU: the input gradient of
//! a class score in the plain, guided and deconvnet modes, the gradient at an
//! intermediate node, and two steps of adversarial training (an FGSM batch
//! from `backward_from`, then a plain Adam step on it), in f32 and f64; and
//! the input gradients through batch norm (after a training forward and
//! after an evaluation forward), PReLU, transposed and masked convolutions
//! and layer norm.
//!
//! The device is the host emulation by default, GPU 0 with `KILN_TEST_GPU=1`.

use crate::common;

use common::{check, tol};
use kiln::attack::{fgsm, softmax_ce_grad, Goal};
use kiln::prelude::*;
use kiln::GradMode;
use kiln_core::kernels::Kernels;
use kiln_cuda::Cuda;

kiln::network! {
    /// A tiny CNN with every layer kind LeNet-5 has.
    pub struct Tiny {
        input: [1, 8, 8],
        conv: Conv2d(3, kernel = 3, padding = 1),
        relu,
        pool: MaxPool2d(2),
        flatten,
        fc1: Linear(6),
        relu,
        fc2: Linear(4),
    }
}

kiln::network! {
    /// The layers whose `InputGrad` reuses their kernels with scratch
    /// buffers or other arguments (batch norm in both modes, PReLU, layer
    /// norm, transposed and masked convolutions).
    pub struct Normed {
        input: [2, 6, 6],
        conv: Conv2d(3, kernel = 3, padding = 1, bias = false),
        bn: BatchNorm2d,
        act: PReLU(3),
        up: ConvTranspose2d(2, kernel = 2, stride = 2),
        mc: MaskedConv2d(2, kernel = 3, mask = "B", padding = 1),
        flatten,
        fc1: Linear(5),
        ln: LayerNorm,
        fc2: Linear(3),
    }
}

fn device() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

/// Everything the test compares, computed on device `dev`.
fn run<E: Elem, D: Kernels<E>>(dev: &D) -> Vec<(String, Vec<E>)> {
    let mut net = Tiny::<E, D>::init(dev, &mut rng(5)).unwrap();
    let mut tape = net.tape().unwrap();
    let mut r = rng(6);
    let xs: Vec<f32> = (0..3 * 64).map(|_| r.random_range(0.0..1.0)).collect();
    let labels = [0u32, 3, 1];
    let x = Tensor::<S3<1, 8, 8>, E, D>::from_slice(
        dev,
        &xs.iter().map(|&v| E::of(v as f64)).collect::<Vec<_>>(),
    )
    .unwrap();
    net.forward_train(&x, &mut tape).unwrap();
    let mut seed = vec![E::zero(); 12];
    for (i, &c) in labels.iter().enumerate() {
        seed[i * 4 + c as usize] = E::one();
    }
    let mut out = Vec::new();
    for (name, mode) in [
        ("plain", GradMode::Plain),
        ("guided", GradMode::Guided),
        ("deconvnet", GradMode::Deconvnet),
    ] {
        net.backward_from(&mut tape, "fc2", &seed, "x", mode)
            .unwrap();
        out.push((
            format!("input gradient, {name}"),
            tape.gradient("x").unwrap().data,
        ));
    }
    net.backward_from(&mut tape, "fc2", &seed, "relu1", GradMode::Plain)
        .unwrap();
    out.push((
        "gradient at relu1".into(),
        tape.gradient("relu1").unwrap().data,
    ));
    // Two steps of adversarial training: FGSM at ε = 0.1, then Adam on it.
    let mut opt = Adam::new(0.01);
    let mut grads = net.grads().unwrap();
    let mut atk = net.tape().unwrap();
    let mut y = Labels::<4, D>::empty::<E>(dev).unwrap();
    y.set::<E>(&labels).unwrap();
    let mut d = Tensor::<S1<4>, E, D>::zeros(dev, 3).unwrap();
    for step in 0..2 {
        let adv = fgsm(&xs, 0.1, Goal::Untargeted(&labels), |x, y| {
            let xt = Tensor::<S3<1, 8, 8>, E, D>::from_slice(
                dev,
                &x.iter().map(|&v| E::of(v as f64)).collect::<Vec<_>>(),
            )?;
            net.forward_train(&xt, &mut atk)?;
            let z: Vec<f32> = atk
                .activation("fc2")?
                .data
                .iter()
                .map(|v| v.f64() as f32)
                .collect();
            let (_, g) = softmax_ce_grad(&z, 4, y)?;
            let g: Vec<E> = g.iter().map(|&v| E::of(v as f64)).collect();
            net.backward_from(&mut atk, "fc2", &g, "x", GradMode::Plain)?;
            Ok(atk
                .gradient("x")?
                .data
                .iter()
                .map(|v| v.f64() as f32)
                .collect())
        })
        .unwrap();
        out.push((
            format!("FGSM images, step {step}"),
            adv.iter().map(|&v| E::of(v as f64)).collect(),
        ));
        let xa = Tensor::<S3<1, 8, 8>, E, D>::from_slice(
            dev,
            &adv.iter().map(|&v| E::of(v as f64)).collect::<Vec<_>>(),
        )
        .unwrap();
        let logits = net.forward_train(&xa, &mut tape).unwrap();
        cross_entropy(logits, &y, Some(&mut d)).unwrap();
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    out.push((
        "fc1.weight after two steps".into(),
        net.fc1.weight.to_vec().unwrap(),
    ));
    out
}

/// Input gradients through `Normed` after a training forward (batch
/// statistics; the running statistics move) and after an evaluation forward
/// (running statistics), and the gradient at `bn`'s output.
fn run_normed<E: Elem, D: Kernels<E>>(dev: &D) -> Vec<(String, Vec<E>)> {
    let mut net = Normed::<E, D>::init(dev, &mut rng(7)).unwrap();
    net.act
        .weight
        .copy_from_slice(&[E::of(0.25), E::of(-0.5), E::of(0.1)])
        .unwrap();
    let mut tape = net.tape().unwrap();
    let mut r = rng(8);
    let xs: Vec<E> = (0..3 * 72)
        .map(|_| E::of(r.random_range(-1.0..1.0)))
        .collect();
    let x = Tensor::<S3<2, 6, 6>, E, D>::from_slice(dev, &xs).unwrap();
    let seed: Vec<E> = (0..9).map(|i| E::of(0.5 - 0.125 * i as f64)).collect();
    let mut out = Vec::new();
    for train in [true, false] {
        if train {
            net.forward_train(&x, &mut tape).unwrap();
        } else {
            net.forward_with(&x, &mut tape).unwrap();
        }
        net.backward_from(&mut tape, "fc2", &seed, "x", GradMode::Plain)
            .unwrap();
        out.push((
            format!("Normed input gradient, train {train}"),
            tape.gradient("x").unwrap().data,
        ));
        out.push((
            format!("Normed gradient at bn, train {train}"),
            tape.gradient("bn").unwrap().data,
        ));
    }
    out
}

fn compare<E: Elem>()
where
    Cuda: Kernels<E>,
{
    let mut want = run::<E, Cpu>(&Cpu);
    want.extend(run_normed::<E, Cpu>(&Cpu));
    let dev = device();
    let mut got = run::<E, Cuda>(&dev);
    got.extend(run_normed::<E, Cuda>(&dev));
    assert_eq!(want.len(), got.len());
    for ((name, w), (_, g)) in want.iter().zip(&got) {
        check(name, g, w, 10.0 * tol::<E>());
        assert!(w.iter().any(|v| v.f64() != 0.0), "{name}: all zero");
    }
}

#[test]
fn backward_from_matches_the_cpu_f32() {
    compare::<f32>();
}

#[test]
fn backward_from_matches_the_cpu_f64() {
    compare::<f64>();
}
