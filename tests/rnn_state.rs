//! A recurrent layer's state in `network!`: `state = s0` starts a layer from
//! a graph value and `FinalState(rnn)` reads the state it ends in, so a
//! training loop carries the state from one batch to the next with its
//! gradient stopped (truncated backpropagation through time), or an
//! encoder's final state starts a decoder with the gradient flowing through.
//! Every gradient of the generated networks (parameters, the state input)
//! is checked against central differences, chunks with the state carried
//! reproduce the unsplit sequence, and a truncated-BPTT training loop learns
//! a sequence whose next symbol depends on the previous chunk.

use kiln::prelude::*;
use kiln::testing::{numeric_grad, numeric_grad_small, random_input, rel_err2};
use kiln::Path;

kiln::network! {
    /// A character model over chunks of 5, its 2-layer LSTM started from the
    /// state `s0` ([2 (h, c), 2 layers, 6 units]) and ending in `state`.
    pub struct Chunked {
        input ids: Tokens<[5], 7>,
        input s0: [2, 2, 6],
        let y = ids |> emb: Embedding(7, 4) |> lstm: LSTM(6, num_layers = 2, state = s0);
        output logits = y |> head: Linear(7);
        output state = y |> FinalState(lstm);
    }
}

kiln::network! {
    /// The same model over 15 positions at once, from a zero state.
    pub struct Whole {
        input ids: Tokens<[15], 7>,
        let y = ids |> emb: Embedding(7, 4) |> lstm: LSTM(6, num_layers = 2);
        output logits = y |> head: Linear(7);
    }
}

kiln::network! {
    /// An encoder GRU's final state starts a bidirectional-free decoder GRU
    /// (sequence to sequence without attention), the gradient flowing from
    /// the decoder into the encoder through the state.
    pub struct EncDec {
        input src: [4, 3],
        input tgt: [3, 2],
        let e = src |> enc: GRU(5);
        let s = e |> FinalState(enc);
        let d = tgt |> dec: GRU(5, state = s);
        output out = d |> fc: Linear(2);
    }
}

/// Every parameter's gradient against central differences of `loss`;
/// returns the worst relative error.
fn check_params<N: Module<f64, Cpu>>(
    net: &mut N,
    grads: &N::Grads,
    mut loss: impl FnMut(&N) -> f64,
) -> f64 {
    let mut analytic = Vec::new();
    net.visit_grads(grads, &Path::ROOT, &mut |p, g| {
        analytic.push((p.to_string(), g.grad.unwrap()[..g.numel].to_vec()))
    });
    let mut worst = 0.0f64;
    for (pi, (name, a)) in analytic.iter().enumerate() {
        let mut value = Vec::new();
        net.visit_grads(grads, &Path::ROOT, &mut |_, p| {
            value.push(p.value[..p.numel].to_vec())
        });
        let p0 = value[pi].clone();
        let mut f = |v: &[f64]| {
            let mut i = 0;
            net.visit_grads(grads, &Path::ROOT, &mut |_, p| {
                if i == pi {
                    p.value.copy_from_slice(v);
                }
                i += 1;
            });
            loss(net)
        };
        let (n1, n2) = (numeric_grad(&p0, &mut f), numeric_grad_small(&p0, &mut f));
        f(&p0);
        let e = rel_err2(a, &n1, &n2);
        println!("{name}: {e:e}");
        worst = worst.max(e);
    }
    worst
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn state_in_and_out_gradients_match_central_differences() {
    let batch = 2;
    let mut net = Chunked::<f64>::init(&Cpu, &mut rng(1)).unwrap();
    let ids: Vec<u32> = (0..batch * 5).map(|i| (i * 3 % 7) as u32).collect();
    let ids = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &ids).unwrap();
    let sv = random_input(batch * 24, &mut rng(2));
    let (r1, r2) = (
        random_input(batch * 35, &mut rng(3)),
        random_input(batch * 24, &mut rng(4)),
    );
    let t = |v: &[f64]| Tensor::<S3<2, 2, 6>, f64>::from_slice(&Cpu, v).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    tape.input_grads = true;
    net.forward_train(&ids, &t(&sv), &mut tape).unwrap();
    let dl = Tensor::<S2<5, 7>, f64>::from_slice(&Cpu, &r1).unwrap();
    net.backward(&mut tape, &dl, &t(&r2), &mut grads).unwrap();
    let ds = tape.grad_s0.to_vec().unwrap();
    let loss = |net: &Chunked<f64>, s: &[f64]| {
        let (l, st) = net.forward(&ids, &t(s)).unwrap();
        dot(&l.to_vec().unwrap(), &r1) + dot(&st.to_vec().unwrap(), &r2)
    };
    let e = check_params(&mut net, &grads, |n| loss(n, &sv));
    assert!(e < 1e-6, "parameters: {e:e}");
    let mut f = |v: &[f64]| loss(&net, v);
    let (n1, n2) = (numeric_grad(&sv, &mut f), numeric_grad_small(&sv, &mut f));
    let e = rel_err2(&ds, &n1, &n2);
    assert!(e < 1e-6, "the initial state: {e:e}");
    assert!(ds.iter().any(|v| v.abs() > 1e-3), "no gradient reached s0");
}

#[test]
fn encoder_state_carries_the_gradient_into_the_encoder() {
    let batch = 3;
    let mut net = EncDec::<f64>::init(&Cpu, &mut rng(5)).unwrap();
    let (src, tgt) = (
        random_input(batch * 12, &mut rng(6)),
        random_input(batch * 6, &mut rng(7)),
    );
    let r = random_input(batch * 6, &mut rng(8));
    let src = Tensor::<S2<4, 3>, f64>::from_slice(&Cpu, &src).unwrap();
    let tgt = Tensor::<S2<3, 2>, f64>::from_slice(&Cpu, &tgt).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    tape.input_grads = true;
    net.forward_train(&src, &tgt, &mut tape).unwrap();
    let dr = Tensor::<S2<3, 2>, f64>::from_slice(&Cpu, &r).unwrap();
    net.backward(&mut tape, &dr, &mut grads).unwrap();
    let dsrc = tape.grad_src.to_vec().unwrap();
    let e = check_params(&mut net, &grads, |n| {
        dot(&n.forward(&src, &tgt).unwrap().to_vec().unwrap(), &r)
    });
    assert!(e < 1e-6, "parameters: {e:e}");
    let sv = src.to_vec().unwrap();
    let mut f = |v: &[f64]| {
        let s = Tensor::<S2<4, 3>, f64>::from_slice(&Cpu, v).unwrap();
        dot(&net.forward(&s, &tgt).unwrap().to_vec().unwrap(), &r)
    };
    let (n1, n2) = (numeric_grad(&sv, &mut f), numeric_grad_small(&sv, &mut f));
    let e = rel_err2(&dsrc, &n1, &n2);
    assert!(e < 1e-6, "the encoder's input, through the state: {e:e}");
}

/// Three chunks of 5 with the final state fed back as the next `s0` give
/// the logits of the 15 positions run at once (the same weights: `init`
/// draws them in the same order for both).
#[test]
fn carried_state_reproduces_the_unsplit_sequence() {
    let batch = 2;
    let net = Chunked::<f64>::init(&Cpu, &mut rng(9)).unwrap();
    let whole = Whole::<f64>::init(&Cpu, &mut rng(9)).unwrap();
    let ids: Vec<u32> = (0..batch * 15)
        .map(|i| ((i * 5 + i / 4) % 7) as u32)
        .collect();
    let want = whole
        .forward(&Tokens::<S1<15>, 7>::new::<f64>(&Cpu, &ids).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let mut s = Tensor::<S3<2, 2, 6>, f64>::from_vec(&Cpu, batch, vec![0.0; batch * 24]).unwrap();
    for k in 0..3 {
        let chunk: Vec<u32> = (0..batch)
            .flat_map(|b| ids[b * 15 + 5 * k..][..5].to_vec())
            .collect();
        let x = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &chunk).unwrap();
        let (logits, next) = net.forward(&x, &s).unwrap();
        let l = logits.to_vec().unwrap();
        for b in 0..batch {
            for (g, w) in l[b * 35..][..35]
                .iter()
                .zip(&want[(b * 15 + 5 * k) * 7..][..35])
            {
                assert!((g - w).abs() < 1e-13, "chunk {k}, sample {b}: {g} vs {w}");
            }
        }
        s = next;
    }
}

/// A stream of segments: a random marker (`a` = 0 or `b` = 1), then a
/// run of the filler 2 (two after `a`, three after `b`), then the closing
/// symbol of the marker (3 or 4). Everything but the markers follows from
/// the last marker and the count since it, which is often in the previous
/// chunk of 5. Truncated BPTT (state carried, gradient stopped at each
/// chunk) learns it; the same model with the state reset at every chunk
/// cannot, where the marker is in an earlier chunk.
#[test]
fn truncated_bptt_learns_across_chunk_boundaries() {
    let (batch, chunks) = (8, 240);
    let mut r = rng(11);
    let streams: Vec<Vec<u32>> = (0..batch)
        .map(|_| {
            let mut s = Vec::new();
            while s.len() < chunks * 5 + 1 {
                let m = r.random_range(0..2u32);
                s.push(m);
                s.extend(std::iter::repeat_n(2, 2 + m as usize));
                s.push(3 + m);
            }
            s
        })
        .collect();
    let train = |carry: bool| -> f64 {
        let mut net = Chunked::<f32>::init(&Cpu, &mut rng(12)).unwrap();
        let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
        let mut opt = Adam::new(1e-2);
        let zero =
            Tensor::<S3<2, 2, 6>, f32>::from_vec(&Cpu, batch, vec![0.0; batch * 24]).unwrap();
        let mut s =
            Tensor::<S3<2, 2, 6>, f32>::from_vec(&Cpu, batch, vec![0.0; batch * 24]).unwrap();
        let (mut d, dstate) = (
            Tensor::empty(&Cpu).unwrap(),
            Tensor::<S3<2, 2, 6>, f32>::from_vec(&Cpu, batch, vec![0.0; batch * 24]).unwrap(),
        );
        let mut late = Vec::new();
        for k in 0..chunks {
            let chunk = |o: usize| -> Vec<u32> {
                streams
                    .iter()
                    .flat_map(|st| st[5 * k + o..][..5].to_vec())
                    .collect()
            };
            let x = Tokens::<S1<5>, 7>::new::<f32>(&Cpu, &chunk(0)).unwrap();
            let y = Tokens::<S1<5>, 7>::new::<f32>(&Cpu, &chunk(1)).unwrap();
            let s0 = if carry { &s } else { &zero };
            let (logits, state) = net.forward_train(&x, s0, &mut tape).unwrap();
            let loss = kiln::loss::cross_entropy_tokens(logits, &y, None, Some(&mut d)).unwrap();
            if k >= chunks - 40 {
                late.push(loss as f64);
            }
            // The carried state is an input of the next chunk: a copy, so
            // no gradient reaches this chunk from the next one; nothing
            // reaches it from this chunk's loss either (zero gradient).
            s.assign(state).unwrap();
            net.backward(&mut tape, &d, &dstate, &mut grads).unwrap();
            opt.step(&mut net, &grads).unwrap();
        }
        late.iter().sum::<f64>() / late.len() as f64
    };
    let (carried, reset) = (train(true), train(false));
    println!("mean loss over the last 40 chunks: carried {carried:.4}, reset {reset:.4}");
    // The markers are the only randomness: ln 2 per segment of 4.5 symbols
    // on average, 0.154 nats per symbol, the floor. Measured: carried 0.288,
    // reset 0.454.
    assert!(
        carried < 0.35,
        "truncated BPTT did not learn the stream: {carried}"
    );
    assert!(
        carried < reset - 0.1,
        "carrying the state does not help: {carried} vs {reset}"
    );
}
