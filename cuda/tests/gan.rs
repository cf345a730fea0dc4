//! A DCGAN's two networks train the same on the CUDA device as on the CPU:
//! two steps of `examples/mnist_gan.rs`'s loop on tiny networks of the same
//! kinds — D on a real and a generated batch (two backward passes into one
//! set of gradients, `Acc::Add`), then G through D's input gradient — with
//! Adam (β₁ = 0.5) on both.
//!
//! The device is the host emulation by default, GPU 0 with `KILN_TEST_GPU=1`.

use crate::common;

use kiln::prelude::*;
use kiln_core::kernels::Kernels;
use kiln_cuda::Cuda;

kiln::network! {
    /// z [3] → Linear 32 → [2, 4, 4] → BN → ReLU → ConvT 4×4 s2 → [1, 8, 8] → tanh.
    pub struct TinyG {
        input: [3],
        fc: Linear(32, bias = false),
        reshape([2, 4, 4]),
        bn: BatchNorm2d,
        relu,
        up: ConvTranspose2d(1, kernel = 4, stride = 2, padding = 1),
        tanh,
    }
}

kiln::network! {
    /// [1, 8, 8] → Conv 4×4 s2 → LeakyReLU → Conv 3×3 s2 → BN → LeakyReLU → Linear 1.
    pub struct TinyD {
        input: [1, 8, 8],
        c1: Conv2d(3, kernel = 4, stride = 2, padding = 1),
        LeakyRelu(0.2),
        c2: Conv2d(4, kernel = 3, stride = 2, padding = 1, bias = false),
        bn: BatchNorm2d,
        LeakyRelu(0.2),
        flatten,
        fc: Linear(1),
    }
}

fn device() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

/// What two steps produced on one device.
struct Run<E> {
    d_losses: Vec<E>,
    g_losses: Vec<E>,
    /// G's `fc.weight` gradient of the last step (through D's input gradient).
    g_grad: Vec<E>,
    /// D's `c1.weight` gradient of the last step (real + fake).
    d_grad: Vec<E>,
    /// G's samples (evaluation mode) after the steps.
    samples: Vec<E>,
}

fn train<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> Run<E> {
    let mut r = rng(4);
    let mut g = TinyG::<E, D>::init(dev, &mut r).unwrap();
    let mut d = TinyD::<E, D>::init(dev, &mut r).unwrap();
    let (mut gt, mut gg) = (g.tape().unwrap(), g.grads().unwrap());
    let (mut dt, mut dg) = (d.tape().unwrap(), d.grads().unwrap());
    dt.input_grads = true;
    let mut gopt = Adam::new(1e-2).betas(0.5, 0.999);
    let mut dopt = Adam::new(1e-2).betas(0.5, 0.999);
    let batch = 6;
    let xs: Vec<E> = (0..batch * 64)
        .map(|i| E::of(((i * 7919 % 101) as f64 / 50.0) - 1.0))
        .collect();
    let zs: Vec<E> = (0..batch * 3)
        .map(|i| E::of(((i * 31 % 17) as f64 / 8.0) - 1.0))
        .collect();
    let x = Tensor::<S3<1, 8, 8>, E, D>::from_slice(dev, &xs).unwrap();
    let z = Tensor::<S1<3>, E, D>::from_slice(dev, &zs).unwrap();
    let ones = Tensor::<S1<1>, E, D>::from_vec(dev, batch, vec![E::of(1.0); batch]).unwrap();
    let zeros = Tensor::<S1<1>, E, D>::zeros(dev, batch).unwrap();
    let mut dl = Tensor::empty(dev).unwrap();
    let mut run = Run {
        d_losses: Vec::new(),
        g_losses: Vec::new(),
        g_grad: Vec::new(),
        d_grad: Vec::new(),
        samples: Vec::new(),
    };
    for _ in 0..steps {
        g.forward_train(&z, &mut gt).unwrap();
        let l = d.forward_train(&x, &mut dt).unwrap();
        let lr = bce_with_logits(l, &ones, Some(&mut dl)).unwrap();
        d.backward(&mut dt, &dl, &mut dg).unwrap();
        let l = d.forward_train(&gt.out_y, &mut dt).unwrap();
        let lf = bce_with_logits(l, &zeros, Some(&mut dl)).unwrap();
        d.backward_acc(&mut dt, &dl, &mut dg, Acc::Add).unwrap();
        run.d_grad = dg.c1.weight.to_vec().unwrap();
        dopt.step(&mut d, &dg).unwrap();
        let l = d.forward_train(&gt.out_y, &mut dt).unwrap();
        let lg = bce_with_logits(l, &ones, Some(&mut dl)).unwrap();
        d.backward(&mut dt, &dl, &mut dg).unwrap();
        g.backward(&mut gt, &dt.grad_x, &mut gg).unwrap();
        gopt.step(&mut g, &gg).unwrap();
        run.d_losses.push(E::of(lr.f64() + lf.f64()));
        run.g_losses.push(lg);
    }
    run.g_grad = gg.fc.weight.to_vec().unwrap();
    run.samples = g.forward(&z).unwrap().to_vec().unwrap();
    run
}

fn agree<E: Elem>(dev: &Cuda, tol: f64) {
    let (c, k) = (train::<E, Cpu>(&Cpu, 2), train::<E, Cuda>(dev, 2));
    println!(
        "{}: D losses cpu {:?} / cuda {:?}; G losses cpu {:?} / cuda {:?}",
        E::NAME,
        c.d_losses,
        k.d_losses,
        c.g_losses,
        k.g_losses
    );
    common::check("D loss per step", &k.d_losses, &c.d_losses, tol);
    common::check("G loss per step", &k.g_losses, &c.g_losses, tol);
    common::check(
        "D c1.weight gradient (real + fake)",
        &k.d_grad,
        &c.d_grad,
        tol,
    );
    common::check(
        "G fc.weight gradient (through D)",
        &k.g_grad,
        &c.g_grad,
        tol,
    );
    common::check(
        "G samples after the Adam steps",
        &k.samples,
        &c.samples,
        tol,
    );
    // The steps did something: D separates the batches better after its first step.
    assert!(
        c.d_losses[1].f64() < c.d_losses[0].f64(),
        "D loss {:?}",
        c.d_losses
    );
}

#[test]
fn dcgan_steps_train_like_on_the_cpu() {
    let dev = device();
    agree::<f64>(&dev, 1e-10);
    agree::<f32>(&dev, 1e-4);
}
