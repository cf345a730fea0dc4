//! The pieces of learning with fewer labels run the same on the CUDA device
//! as on the CPU: two Adam steps of a student distilled from a teacher at
//! temperature 3 with hard labels (`kiln::loss::Distill`), then two steps on
//! confidence-masked pseudo-labels (`kiln::loss::PseudoLabel`), with a
//! moving average of the weights (`kiln::optim::Ema`) after each step.
//!
//! The device is the host emulation by default, GPU 0 with `KILN_TEST_GPU=1`.

use crate::common;

use kiln::loss::{Distill, PseudoLabel};
use kiln::optim::Ema;
use kiln::prelude::*;
use kiln_core::kernels::Kernels;
use kiln_cuda::Cuda;

kiln::network! {
    /// The teacher.
    pub struct Teacher {
        input: [12],
        fc1: Linear(20),
        tanh,
        fc2: Linear(5),
    }
}

kiln::network! {
    /// The student (the examples' 784-64-10 at a test's size).
    pub struct Student {
        input: [12],
        fc1: Linear(8),
        relu,
        fc2: Linear(5),
    }
}

fn device() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

/// (losses, confident counts, final student logits, final EMA logits)
fn train<E: Elem, D: Kernels<E>>(dev: &D) -> (Vec<E>, Vec<usize>, Vec<E>, Vec<E>) {
    let teacher = Teacher::<E, D>::init(dev, &mut rng(1)).unwrap();
    let mut net = Student::<E, D>::init(dev, &mut rng(2)).unwrap();
    let mut shadow = Student::<E, D>::init(dev, &mut rng(3)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut wtape = net.tape().unwrap();
    let mut opt = Adam::new(1e-2);
    let mut ema = Ema::<E, D>::new(0.5).unwrap();
    let xs: Vec<E> = (0..9 * 12)
        .map(|i| E::of(((i * 7 % 13) as f64 - 6.0) * 0.25))
        .collect();
    let x = Tensor::<S1<12>, E, D>::from_slice(dev, &xs).unwrap();
    let y = Labels::<5, D>::new::<E>(dev, &[0, 1, 2, 3, 4, 0, 1, 2, 3]).unwrap();
    let t = teacher.forward(&x).unwrap();
    let mut distill = Distill::<5, E, D>::new(dev, 3.0, 0.25).unwrap();
    let mut pl = PseudoLabel::<5, E, D>::new(dev, 0.3).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let (mut losses, mut used) = (Vec::new(), Vec::new());
    for step in 0..4 {
        let out = net.forward_train(&x, &mut tape).unwrap();
        let l = if step < 2 {
            distill.loss(out, &t, &y, Some(&mut d)).unwrap()
        } else {
            let w = net.forward_with(&x, &mut wtape).unwrap();
            let (l, n) = pl.loss(out, w, Some(&mut d)).unwrap();
            used.push(n);
            l
        };
        losses.push(l);
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
        ema.update(&mut shadow, &net).unwrap();
    }
    let out = net.forward(&x).unwrap().to_vec().unwrap();
    let avg = shadow.forward(&x).unwrap().to_vec().unwrap();
    (losses, used, out, avg)
}

#[test]
fn distillation_pseudo_labels_and_ema_train_like_on_the_cpu() {
    let dev = device();
    let (lc, uc, oc, ac) = train::<f64, Cpu>(&Cpu);
    let (lg, ug, og, ag) = train::<f64, Cuda>(&dev);
    common::check("loss per step", &lg, &lc, 1e-10);
    assert_eq!(ug, uc, "confident pseudo-labels per step");
    assert!(
        uc.iter().all(|&n| n > 0 && n < 9),
        "{uc:?}: the mask must keep some and drop some"
    );
    common::check("student logits after the steps", &og, &oc, 1e-10);
    common::check("EMA logits after the steps", &ag, &ac, 1e-10);
    assert!(
        lc[1] < lc[0],
        "distillation does not reduce the loss: {lc:?}"
    );
    assert!(
        oc.iter().zip(&ac).any(|(a, b)| (a - b).abs() > 1e-6),
        "the average is not the last weights"
    );
}

/// NT-Xent (computed on the host from the device's embeddings, its
/// gradient sent back) gives the same loss and gradient on both devices.
#[test]
fn nt_xent_matches_the_cpu() {
    let dev = device();
    let zs: Vec<f64> = (0..8 * 5)
        .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.3 + 0.1)
        .collect();
    let mut nt = kiln::loss::NtXent::new(0.5).unwrap();
    let zc = Tensor::<S1<5>, f64, Cpu>::from_slice(&Cpu, &zs).unwrap();
    let zg = Tensor::<S1<5>, f64, Cuda>::from_slice(&dev, &zs).unwrap();
    let (mut gc, mut gg) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&dev).unwrap());
    let lc = nt.loss(&zc, Some(&mut gc)).unwrap();
    let lg = nt.loss(&zg, Some(&mut gg)).unwrap();
    common::check("loss", &[lg], &[lc], 1e-12);
    common::check(
        "gradient",
        &gg.to_vec().unwrap(),
        &gc.to_vec().unwrap(),
        1e-12,
    );
    assert!(lc > 0.0);
}
