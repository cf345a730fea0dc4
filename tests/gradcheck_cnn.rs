//! Gradient checks of generated convolutional networks (f64, central
//! differences, max relative error < 1e-6): a LeNet-style chain, a residual
//! CNN with batch norm written in the graph form, and an encoder–decoder with
//! max-unpooling, a transposed convolution, upsampling and a U-Net skip;
//! and the residual CNN nested in another network.

use kiln::prelude::*;
use kiln::testing::check_layer;

kiln::network! {
    /// LeNet's shape at a small size, with every chain-form image layer.
    pub struct TinyLeNet {
        input: [1, 10, 10],
        conv1: Conv2d(3, kernel = 3, padding = 1),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(3, 4, kernel = (3, 2), stride = (1, 2)),
        tanh,
        pool2: AvgPool2d(kernel = 2, stride = 1),
        flatten,
        drop: Dropout(0.25),
        fc1: Linear(5),
        sigmoid,
        fc2: Linear(3),
    }
}

kiln::network! {
    /// A residual block with batch norm (training mode: batch statistics).
    pub struct ResBlock {
        input x: [4, 5, 5],
        let h = x |> c1: Conv2d(4, kernel = 3, padding = 1, bias = false) |> bn1: BatchNorm2d |> relu
                  |> c2: Conv2d(4, kernel = 3, padding = 1, bias = false) |> bn2: BatchNorm2d(4);
        output relu(h + x) |> gap: GlobalAvgPool |> head: Linear(2);
    }
}

kiln::network! {
    /// Encoder–decoder: strided and grouped convolutions down, unpooling,
    /// transposed convolution and upsampling up, a channel-concatenation skip.
    pub struct EncDec {
        input x: [2, 8, 8],
        // tanh, not relu: a finite difference straddling relu's kink is not a gradient.
        let e1 = x |> enc1: Conv2d(4, kernel = 3, padding = 1) |> tanh;
        let p = e1 |> pool: MaxPool2d(2);
        let z = p |> enc2: Conv2d(4, kernel = 3, stride = 2, padding = 1, groups = 2) |> tanh;
        let u = z |> up: Upsample(2) |> unpool: MaxUnpool2d(pool);
        // No bias before batch norm: it would cancel it, and its analytic
        // gradient (exactly 0) leaves only rounding noise to compare against.
        let d = concat(u, e1) |> dec: ConvTranspose2d(2, kernel = 2, stride = 2, padding = 4, bias = false);
        output d |> bnd: BatchNorm2d |> Upsample(scale = (1, 1), mode = bilinear);
    }
}

kiln::network! {
    /// `ResBlock` nested in another network. Its convolutions need the
    /// convolution kernels; the outer network's `where` clause names the
    /// block, not its layers, so its constants and calls must not need them.
    pub struct NestedResBlock {
        input: [4, 5, 5],
        stem: Conv2d(4, kernel = 1),
        block: ResBlock -> [2],
        tanh,
    }
}

const TOL: f64 = 1e-6;

#[test]
fn lenet_style_chain() {
    let mut net = TinyLeNet::<f64, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    assert_eq!(TinyLeNet::OUTPUTS, &[&[3usize][..]]);
    let err = check_layer(&mut net, 3, 5).unwrap();
    assert!(err < TOL, "{err}");
}

#[test]
fn residual_cnn_with_batch_norm() {
    let mut net = ResBlock::<f64, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    let err = check_layer(&mut net, 4, 6).unwrap();
    assert!(err < TOL, "{err}");
    // conv 4·4·3·3 twice (no bias), two batch norms (γ, β), head 4·2 + 2.
    assert_eq!(ResBlock::PARAMS, 2 * 144 + 2 * 8 + 10);
}

#[test]
fn encoder_decoder_with_unpooling_and_skip() {
    let mut net = EncDec::<f64, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    assert_eq!(EncDec::OUTPUTS, &[&[2usize, 8, 8][..]]);
    let err = check_layer(&mut net, 2, 7).unwrap();
    assert!(err < TOL, "{err}");
}

#[test]
fn batch_norm_eval_uses_running_statistics() {
    let mut net = ResBlock::<f64, Cpu>::init(&Cpu, &mut rng(4)).unwrap();
    let x = Tensor::<S3<4, 5, 5>, f64>::from_vec(
        &Cpu,
        2,
        (0..200).map(|i| (i as f64 * 0.37).sin()).collect(),
    )
    .unwrap();
    // Fresh running statistics (mean 0, var 1): eval differs from train mode.
    let eval0 = net.forward(&x).unwrap().to_vec().unwrap();
    let mut tape = net.tape().unwrap();
    let train = net.forward_train(&x, &mut tape).unwrap().to_vec().unwrap();
    assert_ne!(eval0, train);
    // forward_train updated the running statistics (momentum 0.1, one batch).
    let rm = net.bn1.running_mean.to_vec().unwrap();
    assert!(rm.iter().any(|v| *v != 0.0));
    assert_eq!(net.bn1.num_batches_tracked.to_vec().unwrap(), vec![1.0]);
    // Eval mode is deterministic and does not touch the statistics.
    let eval1 = net.forward(&x).unwrap().to_vec().unwrap();
    assert_eq!(eval1, net.forward(&x).unwrap().to_vec().unwrap());
    assert_eq!(net.bn1.running_mean.to_vec().unwrap(), rm);
}

#[test]
fn nested_convolutional_network() {
    let mut net = NestedResBlock::<f64, Cpu>::init(&Cpu, &mut rng(4)).unwrap();
    let err = check_layer(&mut net, 4, 9).unwrap();
    assert!(err < TOL, "{err}");
    // stem 4·4·1·1 + 4, then the block's own parameters.
    assert_eq!(NestedResBlock::PARAMS, 20 + ResBlock::PARAMS);
}
