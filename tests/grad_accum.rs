//! Gradient accumulation with the generated `backward_acc`: k micro-batches
//! of b samples, each loss gradient scaled by 1/k and added into one set of
//! gradients (`Acc::Add` after the first), give the gradients of one batch
//! of k·b samples, for a convolutional network and for a sequence network
//! (embedding, LSTM, causal attention, layer norm, GELU), to 1e-10 in f64.
//! Networks with batch norm would differ (its statistics are per
//! micro-batch, as in PyTorch), and dropout draws another mask per call.

use kiln::prelude::*;
use kiln::testing::random_input;
use kiln::Path;

kiln::network! {
    pub struct Cnn {
        input: [1, 8, 8],
        conv: Conv2d(3, kernel = 3, padding = 1),
        relu,
        pool: MaxPool2d(2),
        flatten,
        fc1: Linear(5),
        tanh,
        fc2: Linear(4),
    }
}

kiln::network! {
    pub struct Seq {
        input ids: Tokens<[6], 11>,
        let h = ids |> emb: Embedding(11, 8) |> lstm: LSTM(8);
        let a = h |> attn: MultiHeadAttention(8, heads = 2, causal = true);
        output logits = a + h |> ln: LayerNorm |> gelu |> head: Linear(11);
    }
}

/// Every parameter's gradient, in visiting order.
fn flat<N: Module<f64, Cpu>>(net: &mut N, grads: &N::Grads) -> Vec<f64> {
    let mut out = Vec::new();
    net.visit_grads(grads, &Path::ROOT, &mut |_, g| {
        out.extend_from_slice(&g.grad.unwrap()[..g.numel])
    });
    out
}

fn scaled<S: Shape>(t: &Tensor<S, f64>, by: f64) -> Tensor<S, f64> {
    let v: Vec<f64> = t.to_vec().unwrap().iter().map(|x| x * by).collect();
    Tensor::from_slice(&Cpu, &v).unwrap()
}

fn assert_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let norm = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(
        norm > 1e-3,
        "{what}: the gradient is ~0 ({norm}), the test would prove nothing"
    );
    assert!(
        worst < 1e-10,
        "{what}: accumulated vs whole batch differ by {worst}"
    );
}

#[test]
fn micro_batches_add_up_to_the_whole_batch_cnn() {
    let (k, b) = (3, 2);
    let mut net = Cnn::<f64>::init(&Cpu, &mut rng(1)).unwrap();
    let x = random_input(k * b * 64, &mut rng(2));
    let y: Vec<u32> = (0..k * b).map(|i| (i * 7 % 4) as u32).collect();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut d = Tensor::empty(&Cpu).unwrap();

    let xs = Tensor::<S3<1, 8, 8>, f64>::from_slice(&Cpu, &x).unwrap();
    let logits = net.forward_train(&xs, &mut tape).unwrap();
    cross_entropy(
        logits,
        &Labels::<4>::new::<f64>(&Cpu, &y).unwrap(),
        Some(&mut d),
    )
    .unwrap();
    net.backward(&mut tape, &d, &mut grads).unwrap();
    let whole = flat(&mut net, &grads);

    // Start from garbage: the first micro-batch's Acc::Set must overwrite it.
    let mut acc = net.grads().unwrap();
    net.backward(&mut tape, &scaled(&d, 7.0), &mut acc).unwrap();
    for i in 0..k {
        let xs = Tensor::<S3<1, 8, 8>, f64>::from_slice(&Cpu, &x[i * b * 64..][..b * 64]).unwrap();
        let yl = Labels::<4>::new::<f64>(&Cpu, &y[i * b..][..b]).unwrap();
        let logits = net.forward_train(&xs, &mut tape).unwrap();
        cross_entropy(logits, &yl, Some(&mut d)).unwrap();
        let mode = if i == 0 { Acc::Set } else { Acc::Add };
        net.backward_acc(&mut tape, &scaled(&d, 1.0 / k as f64), &mut acc, mode)
            .unwrap();
    }
    assert_close(&flat(&mut net, &acc), &whole, "Cnn");
}

#[test]
fn micro_batches_add_up_to_the_whole_batch_sequence() {
    let (k, b) = (2, 3);
    let mut net = Seq::<f64>::init(&Cpu, &mut rng(3)).unwrap();
    let ids: Vec<u32> = (0..k * b * 6).map(|i| ((i * 5 + 3) % 11) as u32).collect();
    let tgt: Vec<u32> = (0..k * b * 6).map(|i| ((i * 3 + 1) % 11) as u32).collect();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut d = Tensor::empty(&Cpu).unwrap();
    let tok = |v: &[u32]| Tokens::<S1<6>, 11>::new::<f64>(&Cpu, v).unwrap();

    let logits = net.forward_train(&tok(&ids), &mut tape).unwrap();
    kiln::loss::cross_entropy_tokens(logits, &tok(&tgt), None, Some(&mut d)).unwrap();
    net.backward(&mut tape, &d, &mut grads).unwrap();
    let whole = flat(&mut net, &grads);

    let mut acc = net.grads().unwrap();
    for i in 0..k {
        let r = i * b * 6..(i + 1) * b * 6;
        let logits = net.forward_train(&tok(&ids[r.clone()]), &mut tape).unwrap();
        kiln::loss::cross_entropy_tokens(logits, &tok(&tgt[r]), None, Some(&mut d)).unwrap();
        let mode = if i == 0 { Acc::Set } else { Acc::Add };
        net.backward_acc(&mut tape, &scaled(&d, 1.0 / k as f64), &mut acc, mode)
            .unwrap();
    }
    assert_close(&flat(&mut net, &acc), &whole, "Seq");

    // Two Acc::Add passes of the same batch double the gradient.
    let logits = net.forward_train(&tok(&ids), &mut tape).unwrap();
    kiln::loss::cross_entropy_tokens(logits, &tok(&tgt), None, Some(&mut d)).unwrap();
    net.backward_acc(&mut tape, &d, &mut acc, Acc::Set).unwrap();
    net.backward_acc(&mut tape, &d, &mut acc, Acc::Add).unwrap();
    let twice: Vec<f64> = whole.iter().map(|g| 2.0 * g).collect();
    assert_close(&flat(&mut net, &acc), &twice, "Seq twice");
}
