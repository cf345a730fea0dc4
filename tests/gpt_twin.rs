//! The PyTorch twin of `examples/char_gpt.rs`'s model, small: nanoGPT's
//! `GPT` (`scripts/pytorch/char_gpt.py`) with a vocabulary of 11, context 8,
//! 2 blocks of 2 heads, width 16, no biases, the head tied to the token
//! embedding, in float64. `scripts/pytorch/gpt_twin_fixture.py` recorded its
//! weights, a batch, the logits, the mean cross-entropy and every parameter's
//! gradient (`tests/fixtures/gpt_twin.json`, under kiln's names); kiln's
//! network, the example's written for these sizes, loads the weights and
//! must reproduce all of them within 1e-5 (they agree to about 1e-14).

use kiln::prelude::*;
use kiln::Path;
use serde_json::Value;

kiln::network! {
    /// nanoGPT's `Block`, as `examples/char_gpt.rs`'s `GptBlock`.
    pub struct TwinBlock {
        input x: [8, 16],
        let a = x |> ln_1: LayerNorm(bias = false)
                  |> attn: MultiHeadAttention(16, heads = 2, causal = true, bias = false);
        let h = a + x;
        let m = h |> ln_2: LayerNorm(bias = false)
                  |> c_fc: Linear(64, bias = false)
                  |> gelu
                  |> c_proj: Linear(16, bias = false);
        output y = m + h;
    }
}

kiln::network! {
    /// nanoGPT's `GPT`, as `examples/char_gpt.rs`'s `CharGpt`.
    pub struct TwinGpt {
        input ids: Tokens<[8], 11>,
        let e = ids |> wte: Embedding(11, 16) |> wpe: PositionalEmbedding(8);
        let h = e |> h0: TwinBlock -> [8, 16] |> h1: TwinBlock -> [8, 16] |> ln_f: LayerNorm(bias = false);
        output logits = h |> lm_head: Linear(11, bias = false, tied = wte);
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The largest `|a − b| / max(1, |b|)`.
fn worst(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f64::max)
}

#[test]
fn gpt_logits_loss_and_gradients_match_pytorch() {
    let fx: Value = serde_json::from_str(include_str!("fixtures/gpt_twin.json")).unwrap();
    let mut net = TwinGpt::<f64>::init(&Cpu, &mut rng(0)).unwrap();
    let params = fx["params"].as_object().unwrap();
    let mut loaded = Vec::new();
    net.visit_mut(&Path::ROOT, &mut |p, v: kiln::ParamMut<'_, f64, Cpu>, _| {
        let name = p.to_string();
        let want = floats(&params[&name]);
        assert_eq!(want.len(), v.numel, "{name}");
        v.value.copy_from_slice(&want);
        loaded.push(name);
    });
    assert_eq!(loaded.len(), params.len(), "kiln {loaded:?}");

    let x = Tokens::<S1<8>, 11>::new::<f64>(&Cpu, &ids(&fx["ids"])).unwrap();
    let y = Tokens::<S1<8>, 11>::new::<f64>(&Cpu, &ids(&fx["targets"])).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut d = Tensor::<S2<8, 11>, f64>::empty(&Cpu).unwrap();
    let logits = net.forward_train(&x, &mut tape).unwrap();
    let e_logits = worst(&logits.to_vec().unwrap(), &floats(&fx["logits"]));
    let loss = cross_entropy_tokens(logits, &y, None, Some(&mut d)).unwrap();
    let want_loss = fx["loss"].as_f64().unwrap();
    println!("logits {e_logits:e}, loss {loss} vs {want_loss}");
    assert!(e_logits < 1e-5, "logits differ by {e_logits:e}");
    assert!(
        (loss - want_loss).abs() < 1e-5,
        "loss {loss} vs {want_loss}"
    );
    // The fixture is f64 on both sides: far closer than the 1e-5 asked for.
    assert!(e_logits < 1e-12 && (loss - want_loss).abs() < 1e-12);

    net.backward(&mut tape, &d, &mut grads).unwrap();
    let want = fx["grads"].as_object().unwrap();
    let mut checked = 0;
    let mut all = 0.0f64;
    net.visit_grads(&grads, &Path::ROOT, &mut |p, g| {
        let name = p.to_string();
        let e = worst(g.grad.unwrap(), &floats(&want[&name]));
        println!("{name}: {e:e}");
        assert!(e < 1e-5, "{name}: gradient differs by {e:e}");
        all = all.max(e);
        checked += 1;
    });
    assert_eq!(checked, want.len());
    assert!(all < 1e-12, "largest gradient difference {all:e}");
}
