//! Gradient check of a generated PixelCNN (f64, central differences, max
//! relative error < 1e-6): the architecture of `examples/mnist_pixelcnn.rs`
//! (a type-A masked convolution, residual blocks of type-B masked
//! convolutions nested as a network, 1×1 convolutions to a logit per pixel)
//! at a size where finite differences are cheap.

use kiln::prelude::*;
use kiln::testing::check_layer;

kiln::network! {
    /// `h + MaskedConv2d_B(relu(h))`.
    pub struct TinyBlock {
        input h: [3, 6, 6],
        let r = h |> relu |> conv: MaskedConv2d(3, kernel = 3, mask = "B", padding = 1);
        output h + r;
    }
}

kiln::network! {
    /// A PixelCNN in miniature.
    pub struct TinyPixelCnn {
        input: [1, 6, 6],
        inp: MaskedConv2d(3, kernel = 5, mask = "A", padding = 2),
        b1: TinyBlock -> [3, 6, 6],
        b2: TinyBlock -> [3, 6, 6],
        relu,
        out1: Conv2d(4, kernel = 1),
        tanh,
        out2: Conv2d(1, kernel = 1),
    }
}

#[test]
fn tiny_pixelcnn_gradients() {
    let mut net = TinyPixelCnn::<f64, Cpu>::init(&Cpu, &mut rng(5)).unwrap();
    let err = check_layer(&mut net, 2, 8).unwrap();
    assert!(err < 1e-6, "{err}");
    // Every weight is counted, the masked-out ones included (as PyTorch's
    // masked nn.Conv2d): 3·25 + 3, two blocks of 3·3·9 + 3, 3·4 + 4, 4 + 1.
    assert_eq!(TinyPixelCnn::PARAMS, 78 + 2 * 84 + 16 + 5);
}

#[test]
fn masked_weights_get_no_gradient_in_a_network() {
    let net = TinyPixelCnn::<f64, Cpu>::init(&Cpu, &mut rng(6)).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    let x = Tensor::<S3<1, 6, 6>, f64>::from_vec(
        &Cpu,
        2,
        (0..72).map(|i| ((i * 7 % 5) as f64) / 4.0).collect(),
    )
    .unwrap();
    let mut net = net;
    let y = net.forward_train(&x, &mut tape).unwrap();
    let dy = Tensor::<S3<1, 6, 6>, f64>::from_vec(&Cpu, 2, vec![1.0; 72]).unwrap();
    let _ = y;
    net.backward(&mut tape, &dy, &mut grads).unwrap();
    let gi = grads.inp.weight.to_vec().unwrap();
    let mask = kiln::layers::MaskType::A.mask(5, 5);
    for (i, g) in gi.iter().enumerate() {
        if mask[i % 25] == 0 {
            assert_eq!(*g, 0.0, "masked-out weight {i} of `inp` has gradient {g}");
        }
    }
    assert!(gi
        .iter()
        .enumerate()
        .any(|(i, g)| mask[i % 25] == 1 && *g != 0.0));
}
