//! Autoregressive decoding for any model that scores next tokens: greedy
//! decoding and beam search with length normalisation (lesson 15).
//!
//! A model is anything implementing [`NextToken`]: given a batch of
//! [`Query`]s (which source, and the tokens generated so far for it), it
//! writes the log-probabilities of every next token, one row of
//! [`NextToken::vocab`] values per query. [`from_fn`] turns a closure into
//! one. An encoder–decoder network implements it by encoding each source
//! once and running its decoder on `BOS + prefix`; a hand-written table of
//! distributions (the tests) implements it by lookup. The prefix never holds
//! the start token: that is the model's business.
//!
//! Both searches decode several sources at once, so that one model call
//! serves every live prefix of every source.
//!
//! * [`greedy`]: each step appends the most probable token (the lowest id
//!   among equals), until `eos` or `max_len` tokens.
//! * [`beam_search`]: each step extends every live hypothesis by every token
//!   and keeps the `beam` extensions of highest total log-probability
//!   `log p(y₁…y_t) = Σ_s log p(y_s | y_<s)` (ties: the earlier hypothesis,
//!   then the lower id); an extension that ends in `eos` leaves the beam as a
//!   finished hypothesis, so the beam shrinks as hypotheses finish. With
//!   `beam = 1` this is exactly [`greedy`]. Finished hypotheses are ranked by
//!   the length-normalised score `log p / L^α` (`L` the number of tokens,
//!   `eos` included; `α = length_penalty`: 0 ranks by total log-probability,
//!   which favours short outputs, 1 by the mean per token). A source's search
//!   ends when no hypothesis is live, when `max_len` tokens are reached
//!   (live hypotheses are then returned as unfinished, after the finished
//!   ones), or when no live hypothesis can beat the best finished one:
//!   log-probabilities only fall as tokens are added and `L ≤ max_len`, so a
//!   live hypothesis's final score is at most `log p / max_len^α`.

use crate::error::{Error, Result};
use std::cmp::Ordering;

/// One prefix to score: the index of its source and the tokens generated so
/// far (no start token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    /// Which source (`0..sources` of the search) the prefix belongs to.
    pub source: usize,
    /// The tokens generated so far.
    pub prefix: &'a [u32],
}

/// A model that gives the log-probabilities of the next token.
pub trait NextToken {
    /// The number of tokens (the length of one row of log-probabilities).
    fn vocab(&self) -> usize;
    /// Writes `log p(next = v | source, prefix)` for each query `q` and token
    /// `v` into `out[q·vocab + v]` (`out` has `queries.len() · vocab`
    /// elements). Each row should be a log-distribution (log-softmax of
    /// logits); the searches do not renormalise.
    fn log_probs(&mut self, queries: &[Query<'_>], out: &mut [f64]) -> Result<()>;
}

/// A [`NextToken`] model made of a closure (see [`from_fn`]).
pub struct FnModel<F> {
    vocab: usize,
    f: F,
}

/// A [`NextToken`] model over `vocab` tokens whose
/// [`log_probs`](NextToken::log_probs) is `f`.
pub fn from_fn<F>(vocab: usize, f: F) -> FnModel<F>
where
    F: FnMut(&[Query<'_>], &mut [f64]) -> Result<()>,
{
    FnModel { vocab, f }
}

impl<F> NextToken for FnModel<F>
where
    F: FnMut(&[Query<'_>], &mut [f64]) -> Result<()>,
{
    fn vocab(&self) -> usize {
        self.vocab
    }
    fn log_probs(&mut self, queries: &[Query<'_>], out: &mut [f64]) -> Result<()> {
        (self.f)(queries, out)
    }
}

/// A decoded sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// The generated tokens, without `eos`.
    pub tokens: Vec<u32>,
    /// `Σ log p` over the generated tokens, `eos` included when finished.
    pub log_prob: f64,
    /// `log_prob / L^α` with `L = tokens.len()` (+ 1 when finished): the
    /// rank of the hypothesis among its source's (see the module doc).
    pub score: f64,
    /// Whether it ended with `eos` (otherwise it reached `max_len`).
    pub finished: bool,
}

impl Hypothesis {
    fn new(tokens: Vec<u32>, log_prob: f64, finished: bool, alpha: f64) -> Hypothesis {
        let len = tokens.len() + usize::from(finished);
        Hypothesis {
            score: log_prob / (len.max(1) as f64).powf(alpha),
            tokens,
            log_prob,
            finished,
        }
    }
}

/// The settings of a [`beam_search`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BeamSearch {
    /// Hypotheses kept per step (`k ≥ 1`).
    pub beam: usize,
    /// The end-of-sequence token.
    pub eos: u32,
    /// At most this many tokens are generated per hypothesis, `eos` included.
    pub max_len: usize,
    /// `α` of the length normalisation `log p / L^α` (0: none, 1: the mean
    /// log-probability per token).
    pub length_penalty: f64,
}

fn check(what: &'static str, vocab: usize, eos: u32, max_len: usize) -> Result<()> {
    if vocab == 0 {
        return Err(Error::invalid(what, "the model's vocabulary is empty"));
    }
    if eos as usize >= vocab {
        return Err(Error::invalid(
            what,
            format!("eos = {eos} is not a token of a vocabulary of {vocab}"),
        ));
    }
    if max_len == 0 {
        return Err(Error::invalid(what, "max_len must be at least 1"));
    }
    Ok(())
}

/// Asks `model` for every query's row, checking the rows hold no NaN.
fn score<M: NextToken + ?Sized>(
    model: &mut M,
    queries: &[Query<'_>],
    out: &mut Vec<f64>,
) -> Result<usize> {
    let v = model.vocab();
    out.clear();
    out.resize(queries.len() * v, 0.0);
    model.log_probs(queries, out)?;
    if let Some(i) = out.iter().position(|x| x.is_nan()) {
        return Err(Error::invalid(
            "decode",
            format!(
                "the model gave NaN as the log-probability of token {} after prefix {:?} of source {}",
                i % v,
                queries[i / v].prefix,
                queries[i / v].source
            ),
        ));
    }
    Ok(v)
}

/// Greedy decoding of `sources` sources at once: each step appends the most
/// probable token (the lowest id among equals) to every unfinished sequence,
/// until `eos` (finished) or `max_len` tokens (unfinished). One
/// [`Hypothesis`] per source, `score = log_prob`.
pub fn greedy<M: NextToken + ?Sized>(
    model: &mut M,
    sources: usize,
    eos: u32,
    max_len: usize,
) -> Result<Vec<Hypothesis>> {
    check("greedy", model.vocab(), eos, max_len)?;
    let mut seqs: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0); sources];
    let mut live: Vec<usize> = (0..sources).collect();
    let mut finished = vec![false; sources];
    let mut out = Vec::new();
    for _ in 0..max_len {
        if live.is_empty() {
            break;
        }
        let queries: Vec<Query<'_>> = live
            .iter()
            .map(|&s| Query {
                source: s,
                prefix: &seqs[s].0,
            })
            .collect();
        let v = score(model, &queries, &mut out)?;
        let mut next = Vec::with_capacity(live.len());
        for (row, &s) in out.chunks_exact(v).zip(&live) {
            let mut best = 0;
            for (j, x) in row.iter().enumerate() {
                if *x > row[best] {
                    best = j;
                }
            }
            seqs[s].1 += row[best];
            if best as u32 == eos {
                finished[s] = true;
            } else {
                seqs[s].0.push(best as u32);
                next.push(s);
            }
        }
        live = next;
    }
    Ok(seqs
        .into_iter()
        .zip(finished)
        .map(|((tokens, lp), f)| Hypothesis::new(tokens, lp, f, 0.0))
        .collect())
}

/// Ranks hypotheses: finished first, then by score, highest first (stable).
fn rank(h: &mut [Hypothesis]) {
    h.sort_by(|a, b| {
        b.finished
            .cmp(&a.finished)
            .then(b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal))
    });
}

/// Beam search over `sources` sources at once (see the module doc). Returns,
/// per source, its hypotheses ranked best first: the finished ones by score,
/// then those cut at `max_len`. The first is the search's answer; the list
/// holds every hypothesis that finished before the search stopped.
pub fn beam_search<M: NextToken + ?Sized>(
    model: &mut M,
    sources: usize,
    cfg: &BeamSearch,
) -> Result<Vec<Vec<Hypothesis>>> {
    check("beam_search", model.vocab(), cfg.eos, cfg.max_len)?;
    if cfg.beam == 0 {
        return Err(Error::invalid(
            "beam_search",
            "the beam size must be at least 1",
        ));
    }
    if !cfg.length_penalty.is_finite() || cfg.length_penalty < 0.0 {
        return Err(Error::invalid(
            "beam_search",
            format!(
                "length_penalty must be a finite α ≥ 0, got {}",
                cfg.length_penalty
            ),
        ));
    }
    let (k, alpha) = (cfg.beam, cfg.length_penalty);
    let bound_div = (cfg.max_len as f64).powf(alpha);
    // Per source: its live hypotheses (tokens, log p) and its finished ones.
    let mut alive: Vec<Vec<(Vec<u32>, f64)>> = vec![vec![(Vec::new(), 0.0)]; sources];
    let mut done: Vec<Vec<Hypothesis>> = vec![Vec::new(); sources];
    let mut out = Vec::new();
    let mut cands: Vec<(f64, usize, u32)> = Vec::new();
    for step in 0..cfg.max_len {
        let queries: Vec<Query<'_>> = alive
            .iter()
            .enumerate()
            .flat_map(|(s, a)| {
                a.iter().map(move |(p, _)| Query {
                    source: s,
                    prefix: p,
                })
            })
            .collect();
        if queries.is_empty() {
            break;
        }
        let v = score(model, &queries, &mut out)?;
        let mut rows = out.chunks_exact(v);
        let last = step + 1 == cfg.max_len;
        for s in 0..sources {
            let beams = std::mem::take(&mut alive[s]);
            if beams.is_empty() {
                continue;
            }
            cands.clear();
            for (b, (_, lp)) in beams.iter().enumerate() {
                let row = rows.next().ok_or_else(|| {
                    Error::invalid("beam_search", "internal: fewer rows than queries")
                })?;
                cands.extend(row.iter().enumerate().map(|(t, x)| (lp + x, b, t as u32)));
            }
            // Highest log p first; ties: earlier beam, then lower id.
            cands.sort_by(|x, y| {
                y.0.partial_cmp(&x.0)
                    .unwrap_or(Ordering::Equal)
                    .then(x.1.cmp(&y.1))
                    .then(x.2.cmp(&y.2))
            });
            let mut next = Vec::with_capacity(k);
            for &(lp, b, t) in cands.iter().take(k) {
                let tokens = beams[b].0.clone();
                if t == cfg.eos {
                    done[s].push(Hypothesis::new(tokens, lp, true, alpha));
                } else {
                    let mut tokens = tokens;
                    tokens.push(t);
                    if last {
                        done[s].push(Hypothesis::new(tokens, lp, false, alpha));
                    } else {
                        next.push((tokens, lp));
                    }
                }
            }
            // Stop when no live hypothesis can beat the best finished one.
            let best = done[s]
                .iter()
                .filter(|h| h.finished)
                .map(|h| h.score)
                .fold(f64::NEG_INFINITY, f64::max);
            if next.iter().all(|(_, lp)| lp / bound_div <= best) {
                next.clear();
            }
            alive[s] = next;
        }
    }
    for d in &mut done {
        rank(d);
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
