//! Style transfer (issue 15) on the CUDA device matches the CPU: a tiny twin
//! of `examples/style.rs`'s feature network (four conv stages, every stage an
//! output), Gram losses at two stages, a content loss at a third
//! (`kiln::loss::{StyleTarget, ContentTarget}`: batched GEMMs, `copy_block`,
//! `axpy`, `sum_sq` on the device) and two gradient steps on the pixels.
//!
//! The device is the host emulation by default, GPU 0 with `KILN_TEST_GPU=1`.

use crate::common;

use kiln::loss::{ContentTarget, StyleTarget};
use kiln::prelude::*;
use kiln_core::kernels::Kernels;
use kiln_cuda::Cuda;

kiln::network! {
    /// The example's feature network with 2, 3, 4, 4 channels on 8×8 images.
    pub struct TinyFeat {
        input x: [3, 8, 8],
        let f1 = x |> conv1: Conv2d(2, kernel = 3, padding = 1) |> relu;
        let f2 = f1 |> AvgPool2d(2) |> conv2: Conv2d(3, kernel = 3, padding = 1) |> relu;
        let f3 = f2 |> AvgPool2d(2) |> conv3: Conv2d(4, kernel = 3, padding = 1) |> relu;
        let f4 = f3 |> AvgPool2d(2) |> conv4: Conv2d(4, kernel = 3, padding = 1) |> relu;
        output f1;
        output f2;
        output f3;
        output f4;
    }
}

fn device() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

fn pixels<E: Elem>(seed: usize) -> Vec<E> {
    (0..3 * 64)
        .map(|i| E::of(((i * 7919 + seed * 31) % 101) as f64 / 101.0))
        .collect()
}

/// (loss per step, pixel gradient of the last step, pixels after the steps)
fn optimise<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = TinyFeat::<E, D>::init(dev, &mut rng(3)).unwrap();
    let up = |v: &[E]| Tensor::<S3<3, 8, 8>, E, D>::from_slice(dev, v).unwrap();
    let (a, _, c, _) = net.forward(&up(&pixels(1))).unwrap();
    let (mut s1, mut s3) = (StyleTarget::new(&a).unwrap(), StyleTarget::new(&c).unwrap());
    let mut c2 = ContentTarget::new(&net.forward(&up(&pixels(2))).unwrap().1).unwrap();
    let mut tape = net.tape().unwrap();
    tape.input_grads = true;
    let mut grads = net.grads().unwrap();
    let (mut d1, mut d2, mut d3) = (
        Tensor::empty(dev).unwrap(),
        Tensor::empty(dev).unwrap(),
        Tensor::empty(dev).unwrap(),
    );
    let d4 = Tensor::<S3<4, 1, 1>, E, D>::zeros(dev, 1).unwrap();
    let mut img = pixels::<E>(3);
    let (mut losses, mut g) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let x = up(&img);
        let (f1, f2, f3, _) = net.forward_train(&x, &mut tape).unwrap();
        let l = s1.loss(f1, 10.0, Some((&mut d1, Acc::Set))).unwrap()
            + s3.loss(f3, 10.0, Some((&mut d3, Acc::Set))).unwrap()
            + c2.loss(f2, 0.5, Some((&mut d2, Acc::Set))).unwrap();
        losses.push(E::of(l));
        net.backward(&mut tape, &d1, &d2, &d3, &d4, &mut grads)
            .unwrap();
        g = tape.grad_x.to_vec().unwrap();
        for (p, d) in img.iter_mut().zip(&g) {
            *p = *p - E::of(0.05) * *d;
        }
    }
    (losses, g, img)
}

fn agree<E: Elem>(tol: f64) {
    let (lc, gc, ic) = optimise::<E, Cpu>(&Cpu, 2);
    let (lg, gg, ig) = optimise::<E, Cuda>(&device(), 2);
    println!("{}: losses cpu {lc:?} / cuda {lg:?}", E::NAME);
    common::check("loss per step", &lg, &lc, tol);
    common::check("pixel gradient", &gg, &gc, tol);
    common::check("pixels after two steps", &ig, &ic, tol);
    assert!(lg[1] < lg[0], "the step does not lower the loss: {lg:?}");
}

#[test]
fn style_transfer_steps_match_the_cpu_f32() {
    agree::<f32>(1e-4);
}

#[test]
fn style_transfer_steps_match_the_cpu_f64() {
    agree::<f64>(1e-10);
}
