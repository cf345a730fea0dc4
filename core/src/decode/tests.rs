//! Greedy decoding and beam search on hand-built models: fixed tables of
//! next-token distributions, with every probability worked out by hand.

use super::*;

/// A model from a table: the distribution after each listed prefix (same
/// for every source), `fallback` after any other.
fn table(
    vocab: usize,
    rows: &'static [(&'static [u32], &'static [f64])],
    fallback: &'static [f64],
) -> impl NextToken {
    from_fn(vocab, move |queries, out| {
        for (q, o) in queries.iter().zip(out.chunks_exact_mut(vocab)) {
            let p = rows
                .iter()
                .find(|(prefix, _)| *prefix == q.prefix)
                .map_or(fallback, |r| r.1);
            for (o, p) in o.iter_mut().zip(p) {
                *o = p.ln();
            }
        }
        Ok(())
    })
}

const EOS: u32 = 0;
const A: u32 = 1;
const B: u32 = 2;

/// Tokens EOS, a, b. Greedy takes `a` (0.6 > 0.4) and then EOS (0.4), for
/// p("a") = 0.6 · 0.4 = 0.24; but p("b") = 0.4 · 0.9 = 0.36.
/// Beam search with k = 2 keeps both first tokens; step 2's candidates are
/// b·EOS 0.36, a·EOS 0.24, a·a 0.18, a·b 0.18, b·a 0.02, b·b 0.02; the two
/// best both end in EOS, so the beam empties and "b" (0.36) wins.
fn greedy_trap() -> impl NextToken {
    table(
        3,
        &[
            (&[], &[0.0, 0.6, 0.4]),
            (&[A], &[0.4, 0.3, 0.3]),
            (&[B], &[0.9, 0.05, 0.05]),
        ],
        &[1.0, 0.0, 0.0],
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn greedy_takes_the_locally_best_token() {
    let h = greedy(&mut greedy_trap(), 1, EOS, 5).unwrap();
    assert_eq!(h[0].tokens, [A]);
    assert!(h[0].finished);
    assert!(close(h[0].log_prob, 0.24f64.ln()), "{:?}", h[0]);
}

#[test]
fn beam_finds_the_more_probable_sequence_greedy_misses() {
    let cfg = BeamSearch {
        beam: 2,
        eos: EOS,
        max_len: 5,
        length_penalty: 0.0,
    };
    let h = beam_search(&mut greedy_trap(), 1, &cfg).unwrap();
    let h = &h[0];
    assert_eq!(h[0].tokens, [B]);
    assert!(close(h[0].log_prob, 0.36f64.ln()), "{h:?}");
    // The runner-up is greedy's answer; nothing else finished.
    assert_eq!(h[1].tokens, [A]);
    assert!(close(h[1].log_prob, 0.24f64.ln()));
    assert_eq!(h.len(), 2);
}

/// A model whose distributions depend on the source and the whole prefix
/// (a pseudo-random table over 5 tokens): beam search with k = 1 gives
/// greedy's tokens and log-probabilities for every source, with and
/// without length normalisation, including sequences cut at `max_len`.
#[test]
fn beam_of_one_is_greedy() {
    let v = 5;
    let mut model = from_fn(v, |queries, out| {
        for (q, o) in queries.iter().zip(out.chunks_exact_mut(v)) {
            let mut h = 1469598103934665603u64 ^ q.source as u64;
            for &t in q.prefix {
                h = (h ^ u64::from(t)).wrapping_mul(1099511628211);
            }
            let logits: Vec<f64> = (0..v)
                .map(|j| {
                    let x = h
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(j as u64 * 1442695040888963407);
                    ((x >> 33) % 1000) as f64 / 250.0
                })
                .collect();
            let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z = logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln() + m;
            for (o, l) in o.iter_mut().zip(&logits) {
                *o = l - z;
            }
        }
        Ok(())
    });
    let g = greedy(&mut model, 40, EOS, 6).unwrap();
    assert!(g.iter().any(|h| h.finished) && g.iter().any(|h| !h.finished));
    for alpha in [0.0, 0.7, 1.0] {
        let cfg = BeamSearch {
            beam: 1,
            eos: EOS,
            max_len: 6,
            length_penalty: alpha,
        };
        let b = beam_search(&mut model, 40, &cfg).unwrap();
        for (g, b) in g.iter().zip(&b) {
            assert_eq!(b.len(), 1);
            assert_eq!(g.tokens, b[0].tokens);
            assert_eq!(g.finished, b[0].finished);
            assert!(close(g.log_prob, b[0].log_prob));
        }
    }
}

/// Tokens EOS, a. Ending at once: p("") = 0.5, L = 1. Going on:
/// p(a·EOS) = 0.5 · 0.1 = 0.05, L = 2; p(a·a·EOS) = 0.5 · 0.9 · 0.95 =
/// 0.4275, L = 3; a·a·a is cut at max_len = 3 (0.5 · 0.9 · 0.05 = 0.0225).
/// Without normalisation (α = 0) "" wins: ln 0.5 = −0.693 > ln 0.4275 =
/// −0.850. Per token (α = 1), "aa" wins: −0.850/3 = −0.283 > −0.693/1.
#[test]
fn length_normalisation_prefers_the_longer_sequence() {
    let model = || {
        table(
            2,
            &[
                (&[], &[0.5, 0.5]),
                (&[A], &[0.1, 0.9]),
                (&[A, A], &[0.95, 0.05]),
            ],
            &[1.0, 0.0],
        )
    };
    let run = |alpha| {
        let cfg = BeamSearch {
            beam: 2,
            eos: EOS,
            max_len: 3,
            length_penalty: alpha,
        };
        beam_search(&mut model(), 1, &cfg).unwrap().remove(0)
    };
    let raw = run(0.0);
    assert_eq!(raw[0].tokens, Vec::<u32>::new());
    assert!(close(raw[0].score, 0.5f64.ln()));
    // α = 0 stops as soon as no live hypothesis can beat the best finished
    // one: after step 1, "a" (ln 0.5) can at most tie with "" (ln 0.5).
    assert_eq!(raw.len(), 1, "{raw:?}");
    let norm = run(1.0);
    assert_eq!(norm[0].tokens, [A, A]);
    assert!(close(norm[0].log_prob, 0.4275f64.ln()));
    assert!(close(norm[0].score, 0.4275f64.ln() / 3.0));
    assert_eq!(norm[1].tokens, Vec::<u32>::new());
    assert!(close(norm[2].score, 0.05f64.ln() / 2.0));
    // "aaa" reached max_len without EOS: last, unfinished.
    assert_eq!(norm[3].tokens, [A, A, A]);
    assert!(!norm[3].finished);
    assert!(close(norm[3].log_prob, 0.0225f64.ln()));
    assert_eq!(norm.len(), 4);
}

#[test]
fn several_sources_decode_independently() {
    // Source 0 sees the trap, source 1 a table where "a" is right.
    let mut model = from_fn(3, |queries, out| {
        for (q, o) in queries.iter().zip(out.chunks_exact_mut(3)) {
            let p: &[f64] = match (q.source, q.prefix) {
                (_, []) => &[0.0, 0.6, 0.4],
                (0, [A]) => &[0.4, 0.3, 0.3],
                (1, [A]) => &[0.9, 0.05, 0.05],
                (0, [B]) => &[0.9, 0.05, 0.05],
                (1, [B]) => &[0.4, 0.3, 0.3],
                _ => &[1.0, 0.0, 0.0],
            };
            for (o, p) in o.iter_mut().zip(p) {
                *o = p.ln();
            }
        }
        Ok(())
    });
    let cfg = BeamSearch {
        beam: 2,
        eos: EOS,
        max_len: 4,
        length_penalty: 0.0,
    };
    let h = beam_search(&mut model, 2, &cfg).unwrap();
    assert_eq!(h[0][0].tokens, [B]);
    assert_eq!(h[1][0].tokens, [A]);
    assert!(close(h[1][0].log_prob, 0.54f64.ln()));
}

#[test]
fn bad_settings_are_errors() {
    let mut m = greedy_trap();
    assert!(greedy(&mut m, 1, 3, 5).is_err());
    assert!(greedy(&mut m, 1, EOS, 0).is_err());
    let cfg = BeamSearch {
        beam: 0,
        eos: EOS,
        max_len: 5,
        length_penalty: 0.0,
    };
    assert!(beam_search(&mut m, 1, &cfg).is_err());
    let cfg = BeamSearch {
        beam: 2,
        length_penalty: -1.0,
        ..cfg
    };
    assert!(beam_search(&mut m, 1, &cfg).is_err());
    let mut nan = from_fn(2, |_, out| {
        out.fill(f64::NAN);
        Ok(())
    });
    let e = greedy(&mut nan, 1, EOS, 3).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
}
