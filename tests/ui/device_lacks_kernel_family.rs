// A training function generic over the device, bounded by `Backend<f32>`
// only: the network's convolution needs the device's convolution kernels
// (`ConvKernels`), which that bound does not promise.
use kiln::{Backend, Tensor, S3};

kiln::network! {
    pub struct Cnn {
        input: [1, 8, 8],
        conv1: Conv2d(4, kernel = 3),
        relu,
        flatten,
        fc: Linear(10),
    }
}

fn step<D: Backend<f32>>(net: &Cnn<f32, D>, x: &Tensor<S3<1, 8, 8>, f32, D>) {
    let _ = net.forward(x);
}

fn main() {}
