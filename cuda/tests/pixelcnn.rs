//! The masked convolution of PixelCNN on the CUDA device: the layer (both
//! masks) gives the CPU's outputs and gradients, and a tiny PixelCNN (the
//! architecture of `examples/mnist_pixelcnn.rs`: type-A 5×5, two residual
//! type-B 3×3 blocks, 1×1 convolutions, per-pixel BCE) trains two Adam
//! steps as on the CPU. The layer has no kernel of its own (`copy_block`
//! and the convolution's), so this checks that composition on the device.
//!
//! The device is the host emulation by default, GPU 0 with `KILN_TEST_GPU=1`.

use crate::common;

use kiln::prelude::*;
use kiln_core::kernels::Kernels;
use kiln_core::layers::{MaskType, MaskedConv2d, MaskedConv2dConfig};
use kiln_core::{Acc, Build, Layer, Shape, TrainCtx};
use kiln_cuda::Cuda;

fn device() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

type M<E, D> = MaskedConv2d<E, D, 2, 3, 2, 3, 3, 5, 5, 5, 5>;

/// y, dx, dW, db of one forward and backward pass; the stored weight has
/// junk (7.0) under the mask, which must not show.
fn layer_pass<E: Elem, D: Kernels<E>>(dev: &D, mask: MaskType) -> Vec<Vec<E>> {
    let cfg = MaskedConv2dConfig {
        mask,
        padding: (1, 1),
        ..Default::default()
    };
    let mut l = M::<E, D>::build(dev, &mut rng(5), cfg).unwrap();
    let m = mask.mask(3, 3);
    let w: Vec<E> = l
        .conv
        .weight
        .to_vec()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, v)| if m[i % 9] == 1 { v } else { E::of(7.0) })
        .collect();
    l.conv.weight.copy_from_slice(&w).unwrap();
    let batch = 3;
    let mut r = rng(9);
    let xv: Vec<E> = common::rand_vec(&mut r, batch * <M<E, D> as Layer<E, D>>::In::NUMEL, 1.0);
    let dyv: Vec<E> = common::rand_vec(&mut r, batch * <M<E, D> as Layer<E, D>>::Out::NUMEL, 1.0);
    let x = Tensor::<S3<2, 5, 5>, E, D>::from_slice(dev, &xv).unwrap();
    let dy = Tensor::<S3<3, 5, 5>, E, D>::from_slice(dev, &dyv).unwrap();
    let (mut y, mut dx) = (Tensor::empty(dev).unwrap(), Tensor::empty(dev).unwrap());
    let mut cache = l.cache().unwrap();
    l.forward_train(&x, &mut y, &mut cache, &mut TrainCtx::new(1))
        .unwrap();
    let mut g = l.grads().unwrap();
    l.backward(
        &x,
        &y,
        &mut cache,
        &dy,
        Some((&mut dx, Acc::Set)),
        &mut g,
        Acc::Set,
    )
    .unwrap();
    vec![
        y.to_vec().unwrap(),
        dx.to_vec().unwrap(),
        g.weight.to_vec().unwrap(),
        g.bias.unwrap().to_vec().unwrap(),
    ]
}

#[test]
fn masked_conv_layer_agrees_with_the_cpu() {
    let dev = device();
    for mask in [MaskType::A, MaskType::B] {
        let cpu = layer_pass::<f64, Cpu>(&Cpu, mask);
        let gpu = layer_pass::<f64, Cuda>(&dev, mask);
        for (i, what) in ["y", "dx", "dW", "db"].iter().enumerate() {
            common::check(&format!("{mask:?} {what}"), &gpu[i], &cpu[i], 1e-10);
        }
        // Under the mask the weight gradient is exactly 0 on both devices.
        let m = mask.mask(3, 3);
        assert!(gpu[2]
            .iter()
            .enumerate()
            .all(|(i, v)| m[i % 9] == 1 || *v == 0.0));
        let cpu32 = layer_pass::<f32, Cpu>(&Cpu, mask);
        let gpu32 = layer_pass::<f32, Cuda>(&dev, mask);
        for (i, what) in ["y", "dx", "dW", "db"].iter().enumerate() {
            common::check(&format!("f32 {mask:?} {what}"), &gpu32[i], &cpu32[i], 1e-4);
        }
    }
}

kiln::network! {
    /// `h + MaskedConv2d_B(relu(h))`.
    pub struct Block {
        input h: [4, 6, 6],
        let r = h |> relu |> conv: MaskedConv2d(4, kernel = 3, mask = "B", padding = 1);
        output h + r;
    }
}

kiln::network! {
    /// A PixelCNN in miniature.
    pub struct TinyPixelCnn {
        input: [1, 6, 6],
        inp: MaskedConv2d(4, kernel = 5, mask = "A", padding = 2),
        b1: Block -> [4, 6, 6],
        b2: Block -> [4, 6, 6],
        relu,
        out1: Conv2d(4, kernel = 1),
        relu,
        out2: Conv2d(1, kernel = 1),
    }
}

/// (loss per step, `inp.weight` gradient of the last step, logits after the steps)
fn train<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = TinyPixelCnn::<E, D>::init(dev, &mut rng(8)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 5;
    let xs: Vec<E> = (0..batch * 36)
        .map(|i| E::of(((i * 7919 % 13) < 5) as u8 as f64))
        .collect();
    let x = Tensor::<S3<1, 6, 6>, E, D>::from_slice(dev, &xs).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        losses.push(bce_with_logits_sum(logits, &x, Some(&mut d)).unwrap());
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let g = grads.inp.weight.to_vec().unwrap();
    let out = net.forward(&x).unwrap().to_vec().unwrap();
    (losses, g, out)
}

#[test]
fn tiny_pixelcnn_trains_like_on_the_cpu() {
    let dev = device();
    let (lc, gc, oc) = train::<f64, Cpu>(&Cpu, 2);
    let (lg, gg, og) = train::<f64, Cuda>(&dev, 2);
    println!("losses cpu {lc:?} / cuda {lg:?}");
    common::check("loss per step", &lg, &lc, 1e-10);
    common::check("inp.weight gradient", &gg, &gc, 1e-10);
    common::check("logits after the Adam steps", &og, &oc, 1e-10);
    assert!(lg[1] < lg[0], "training does not reduce the loss");
    let (l32, _, _) = train::<f32, Cuda>(&dev, 2);
    common::check(
        "f32 loss per step",
        &l32,
        &train::<f32, Cpu>(&Cpu, 2).0,
        1e-4,
    );
}
