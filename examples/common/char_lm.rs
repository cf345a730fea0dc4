//! What the character language-model examples (`char_lstm`, `char_gpt`)
//! share: the encoded Shakespeare corpus, the random training windows (as
//! nanoGPT's `get_batch`), top-k sampling from one position's logits, the
//! checkpoint metadata of a resumable run (step, batch generator, history,
//! the tokenizer and the flags a resumed run must share), the loss plot
//! beside a PyTorch twin's, and the data files the twins read.
//!
//! Included by each example as a module (`#[path = "common/char_lm.rs"]`),
//! so it is compiled with the example, and with the smoke tests that include
//! the example.

use kiln::checkpoint::Checkpoint;
use kiln::data::text::{CharTokenizer, Shakespeare};
use kiln::prelude::*;
use kiln::train::plot::{plot_panels, Panel};
use kiln::train::History;
use std::path::Path;

/// Separates the batch generator's stream from the weights' (same seed).
pub const BATCH_STREAM: u64 = 0x6261_7463_6865_7321;

/// The checkpoint's metadata key holding the tokenizer (its file text), so a
/// saved model carries the symbols its ids mean.
pub const TOKENIZER_KEY: &str = "tokenizer.char";

/// The encoded corpus: training and validation ids.
pub struct Corpus {
    /// The tokenizer (84 symbols for the whole of Shakespeare).
    pub tok: CharTokenizer,
    /// Training text, encoded.
    pub train: Vec<u32>,
    /// Validation text, encoded.
    pub val: Vec<u32>,
}

/// Loads and encodes the corpus in `dir`, checking that it has the `vocab`
/// symbols the network `who` was built for.
pub fn load_corpus(dir: &Path, vocab: usize, who: &'static str) -> kiln::Result<Corpus> {
    let data = Shakespeare::load(dir)?;
    let tok = CharTokenizer::from_text(&data.all_text());
    if tok.vocab_size() != vocab {
        return Err(kiln::Error::invalid(
            who,
            format!(
                "the corpus in {} has {} distinct characters; the network was built for {vocab}",
                dir.display(),
                tok.vocab_size()
            ),
        ));
    }
    let train = tok.encode(&data.train.text())?;
    let val = tok.encode(&data.validation.text())?;
    Ok(Corpus { tok, train, val })
}

/// The offsets of one training batch: `batch` starts drawn uniformly from
/// `0..=n − seq − 1`, so that every window has its next-character targets.
pub fn draw_offsets(rng: &mut Rng, n: usize, seq: usize, batch: usize, out: &mut Vec<u32>) {
    out.clear();
    for _ in 0..batch {
        out.push(rng.random_range(0..(n - seq) as u32));
    }
}

/// Fills the inputs and targets of the windows of `seq` starting at `offsets`.
pub fn windows(ids: &[u32], seq: usize, offsets: &[u32], xs: &mut Vec<u32>, ys: &mut Vec<u32>) {
    xs.clear();
    ys.clear();
    for &o in offsets {
        let o = o as usize;
        xs.extend_from_slice(&ids[o..o + seq]);
        ys.extend_from_slice(&ids[o + 1..o + seq + 1]);
    }
}

/// The start offsets of the consecutive evaluation windows `first..last` of
/// `seq` (window `k` starts at `k·seq`).
pub fn eval_offsets(first: usize, last: usize, seq: usize, out: &mut Vec<u32>) {
    out.clear();
    out.extend((first..last).map(|k| (k * seq) as u32));
}

/// Checks `--temperature`.
pub fn check_temperature(temperature: f64) -> kiln::Result<()> {
    if temperature.is_finite() && temperature > 0.0 {
        Ok(())
    } else {
        Err(kiln::Error::invalid(
            "--temperature",
            format!("must be a positive number, got {temperature}"),
        ))
    }
}

/// Draws the next symbol from one position's logits: divided by the
/// temperature, the `top_k` largest kept (0: all), drawn from their softmax.
/// Holds its scratch, so a sampling loop allocates nothing.
pub struct TopK {
    order: Vec<usize>,
    weights: Vec<f64>,
}

impl TopK {
    /// Scratch for a vocabulary of `vocab` symbols.
    pub fn new(vocab: usize) -> Self {
        TopK {
            order: (0..vocab).collect(),
            weights: vec![0.0; vocab],
        }
    }

    /// The drawn symbol of `row` (`vocab` logits).
    pub fn pick(&mut self, row: &[f32], temperature: f64, top_k: usize, rng: &mut Rng) -> usize {
        let vocab = self.order.len();
        self.order
            .sort_unstable_by(|&a, &b| row[b].total_cmp(&row[a]));
        let k = if top_k == 0 { vocab } else { top_k.min(vocab) };
        let top = row[self.order[0]] as f64;
        for (w, &i) in self.weights.iter_mut().zip(&self.order[..k]) {
            *w = ((row[i] as f64 - top) / temperature).exp();
        }
        let total: f64 = self.weights[..k].iter().sum();
        let mut u = rng.random::<f64>() * total;
        for (w, &i) in self.weights[..k].iter().zip(&self.order[..k]) {
            if u < *w {
                return i;
            }
            u -= w;
        }
        self.order[k - 1]
    }
}

/// Records a resumable run's metadata in `c`: the step, the batch
/// generator, the history, the tokenizer and the flags of `fingerprint`.
pub fn save_meta(
    c: &mut Checkpoint,
    fingerprint: &[(&'static str, String)],
    tok: &CharTokenizer,
    step: u64,
    gen: &Rng,
    history: &History,
) {
    c.set_meta("step", step);
    c.set_meta(TOKENIZER_KEY, tok.to_file_text());
    c.set_rng("rng.batches", gen);
    c.set_meta("history", history.to_jsonl());
    for (k, v) in fingerprint {
        c.set_meta(k, v);
    }
}

/// Checks a saved run against this one (the `fingerprint` flags, keys
/// `run.flag_name`, and the tokenizer) and returns its step, batch generator
/// and history; every disagreement is reported at once.
pub fn check_and_read_meta(
    c: &Checkpoint,
    path: &Path,
    fingerprint: &[(&'static str, String)],
    tok: &CharTokenizer,
) -> kiln::Result<(u64, Rng, History)> {
    let mut problems: Vec<String> = fingerprint
        .iter()
        .filter_map(|(k, want)| {
            let got = c
                .metadata
                .get(*k)
                .map(String::as_str)
                .unwrap_or("(missing)");
            (got != want).then(|| {
                format!(
                    "--{}: {got} in the checkpoint, {want} now",
                    &k[4..].replace('_', "-")
                )
            })
        })
        .collect();
    match c.metadata.get(TOKENIZER_KEY) {
        Some(saved) if *saved == tok.to_file_text() => {}
        Some(_) => problems.push(format!(
            "`{TOKENIZER_KEY}`: the saved tokenizer differs from the corpus's (ids would mean other characters)"
        )),
        None => problems.push(format!("`{TOKENIZER_KEY}`: missing")),
    }
    if !problems.is_empty() {
        return Err(kiln::Error::Checkpoint {
            path: path.to_path_buf(),
            problems,
        });
    }
    let step: u64 = c.meta("step")?;
    let gen = c.rng("rng.batches")?;
    let history = History::from_jsonl(c.metadata.get("history").map(String::as_str).unwrap_or(""))
        .map_err(|msg| kiln::Error::Format {
            path: path.to_path_buf(),
            msg: format!("metadata `history`: {msg}"),
        })?;
    Ok((step, gen, history))
}

/// Draws kiln's curves, and the twin's when given, under `title`.
pub fn plot(
    prefix: &Path,
    title: &str,
    history: &History,
    twin: Option<&History>,
) -> kiln::Result<()> {
    let mut series = vec![
        ("kiln train".to_string(), history.series("train_loss")),
        ("kiln validation".to_string(), history.series("val_loss")),
    ];
    if let Some(t) = twin {
        series.push(("PyTorch train".to_string(), t.series("train_loss")));
        series.push(("PyTorch validation".to_string(), t.series("val_loss")));
    }
    let panel = Panel {
        title: title.into(),
        y_label: "nats per character".into(),
        series,
    };
    plot_panels(&[panel], prefix, 800, 480)?;
    Ok(())
}

/// Writes `bytes` to `path`.
pub fn write_file(path: &Path, bytes: impl AsRef<[u8]>) -> kiln::Result<()> {
    std::fs::write(path, bytes).map_err(|source| kiln::Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the data a PyTorch twin reads into `dir`: the encoded training
/// and validation text (`train.u8`, `val.u8`) and every batch's offsets
/// (`offsets.u32`, little-endian, `steps × batch`), drawn from the
/// generator the training draws from.
pub fn export_data(
    dir: &Path,
    corpus: &Corpus,
    seed: u64,
    steps: u64,
    seq: usize,
    batch: usize,
) -> kiln::Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| kiln::Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for (name, ids) in [("train.u8", &corpus.train), ("val.u8", &corpus.val)] {
        let bytes: Vec<u8> = ids.iter().map(|&i| i as u8).collect();
        write_file(&dir.join(name), bytes)?;
    }
    let mut gen = rng(seed ^ BATCH_STREAM);
    let mut offsets = Vec::new();
    let mut bytes = Vec::with_capacity(steps as usize * batch * 4);
    for _ in 0..steps {
        draw_offsets(&mut gen, corpus.train.len(), seq, batch, &mut offsets);
        bytes.extend(offsets.iter().flat_map(|o| o.to_le_bytes()));
    }
    write_file(&dir.join("offsets.u32"), bytes)
}
