//! ONNX export from the CUDA device (the host emulation by default, GPU 0
//! with `KILN_TEST_GPU=1`): the parameters are read back from the device, so
//! a network initialised from the same seed writes the same bytes as on the
//! CPU, for an image network and a sequence network.

use crate::common;

use kiln::prelude::*;
use kiln_cuda::Cuda;

fn device() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

kiln::network! {
    /// Convolution, batch norm, pooling, a residual addition, a linear head.
    pub struct Cnn {
        input x: [2, 8, 8],
        let h = x |> c1: Conv2d(4, kernel = 3, padding = 1) |> bn: BatchNorm2d |> relu;
        let r = h |> c2: Conv2d(4, kernel = 3, padding = 1, bias = false);
        output y = relu(r + h) |> pool: MaxPool2d(2) |> flatten |> fc: Linear(3);
    }
}

kiln::network! {
    /// Embeddings, LayerNorm, a bidirectional LSTM, causal attention.
    pub struct Seq {
        input ids: Tokens<[6], 11>,
        let e = ids |> emb: Embedding(11, 8) |> ln: LayerNorm;
        let h = e |> rnn: LSTM(4, bidirectional = true);
        output y = h |> attn: MultiHeadAttention(8, heads = 2, causal = true) |> mean_over_time;
    }
}

#[test]
fn the_cuda_device_exports_what_the_cpu_exports() {
    let dev = device();
    let a = Cnn::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    let b = Cnn::<f32, Cuda>::init(&dev, &mut rng(3)).unwrap();
    let bytes = a.to_onnx_bytes().unwrap();
    assert!(bytes.len() > 1000);
    assert_eq!(bytes, b.to_onnx_bytes().unwrap());
    let a = Seq::<f32, Cpu>::init(&Cpu, &mut rng(4)).unwrap();
    let b = Seq::<f32, Cuda>::init(&dev, &mut rng(4)).unwrap();
    assert_eq!(a.to_onnx_bytes().unwrap(), b.to_onnx_bytes().unwrap());
}
