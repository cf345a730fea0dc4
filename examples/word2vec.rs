//! word2vec on Shakespeare: skip-gram with negative sampling on kiln's
//! `Embedding` with sparse row updates (`kiln::word2vec` holds the model;
//! this file is the command line).
//!
//! ```text
//! scripts/fetch-shakespeare && scripts/fetch-word-similarity    # once: data/
//! cargo run --release --example word2vec                        # defaults, ~1 min on 2 cores
//! cargo run --release --example word2vec -- --seed 2 --dim 200 --window 8 --epochs 10
//! cargo run --example word2vec -- --smoke                       # seconds, even in a debug build
//! ```
//!
//! It trains on the 36 training works (`docs/data.md`), prints progress at
//! each quarter of an epoch and, per epoch, the
//! mean loss per (centre, context) pair, the pairs, the centre words kept by
//! subsampling, the learning rate and the time; saves the input vectors in
//! the word2vec text format (`--save`, read by gensim's
//! `KeyedVectors.load_word2vec_format`); prints the cosine nearest neighbours
//! of a few words; and scores the vectors on WordSim-353 and SimLex-999
//! (Spearman's ρ over the pairs whose two words are in the vocabulary, with
//! the coverage). The last line is machine-readable:
//! `spearman wordsim353 0.xxxx simlex999 0.xxxx`.
//!
//! `--write-corpus PATH` writes the tokens it trains on, one sentence (at
//! most 10,000 tokens, as gensim's `LineSentence` cuts) per line, which
//! `scripts/python/word2vec_gensim.py` trains gensim's `Word2Vec` on: both
//! see the same token stream.

use clap::Parser;
use kiln::data::text::{Shakespeare, Split, DEFAULT_DIR};
use kiln::word2vec::eval::{evaluate, read_pairs};
use kiln::word2vec::{train_dyn, Config, Corpus, DIMS, SMOKE_DIM, SMOKE_WORKS};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Skip-gram word2vec with negative sampling on Shakespeare")]
struct Args {
    /// Seed of the initialisation and of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Passes over the corpus.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Vector width (one of 32, 50, 100, 200, 300).
    #[arg(long, default_value_t = 100)]
    dim: usize,
    /// Largest window (words each side); each centre word draws its own in 1..=window.
    #[arg(long, default_value_t = 5)]
    window: usize,
    /// Noise words per pair.
    #[arg(long, default_value_t = 5)]
    negative: usize,
    /// Minimum count of a vocabulary word.
    #[arg(long, default_value_t = 5)]
    min_count: u64,
    /// Subsampling threshold (0 turns it off).
    #[arg(long, default_value_t = 1e-3)]
    sample: f64,
    /// Initial learning rate, decayed linearly to --min-alpha.
    #[arg(long, default_value_t = 0.025)]
    alpha: f64,
    /// Final learning rate.
    #[arg(long, default_value_t = 0.0001)]
    min_alpha: f64,
    /// Pairs per SGD step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Stop training after this many seconds (the vectors so far are used).
    #[arg(long, default_value_t = 600)]
    time_budget: u64,
    /// A quick run: the first 4 training works, width 32, 3 epochs, window 3, 3 noise words.
    #[arg(long)]
    smoke: bool,
    /// Shakespeare's texts.
    #[arg(long, default_value = DEFAULT_DIR)]
    data_dir: PathBuf,
    /// wordsim353.tsv and simlex999.txt.
    #[arg(long, default_value = "data/wordsim")]
    wordsim_dir: PathBuf,
    /// Where to write the vectors (word2vec text format).
    #[arg(long, default_value = "data/word2vec/kiln-vectors.txt")]
    save: PathBuf,
    /// Also write the training token stream (one sentence per line).
    #[arg(long)]
    write_corpus: Option<PathBuf>,
    /// Words whose nearest neighbours are printed.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "king,love,night,sword,france,death,father,gold"
    )]
    neighbours: Vec<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("word2vec: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    kiln::train::check_output_path("--save", &a.save)?;
    if let Some(path) = &a.write_corpus {
        kiln::train::check_output_path("--write-corpus", path)?;
    }
    let started = Instant::now();
    let mut cfg = Config {
        window: a.window,
        negative: a.negative,
        min_count: a.min_count,
        sample: a.sample,
        alpha: a.alpha,
        min_alpha: a.min_alpha,
        epochs: a.epochs,
        batch: a.batch,
        seed: a.seed,
        time_budget: Some(Duration::from_secs(a.time_budget)),
    };
    let mut dim = a.dim;
    let shakespeare = Shakespeare::load(&a.data_dir)?;
    let mut split = shakespeare.train;
    if a.smoke {
        cfg = Config {
            seed: a.seed,
            time_budget: cfg.time_budget,
            ..Config::smoke()
        };
        dim = SMOKE_DIM;
        split = Split {
            works: split.works.into_iter().take(SMOKE_WORKS).collect(),
        };
    }
    if !DIMS.contains(&dim) {
        return Err(format!("--dim {dim}: choose one of {DIMS:?}").into());
    }
    let mut out = match &a.write_corpus {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut write_err = None;
    let corpus = Corpus::from_split(&split, cfg.min_count, |sentence| {
        if let Some(o) = out.as_mut() {
            if let Err(e) = writeln!(o, "{}", sentence.join(" ")) {
                write_err.get_or_insert(e);
            }
        }
    });
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if let (Some(mut o), Some(p)) = (out, &a.write_corpus) {
        o.flush()?;
        println!("token stream written to {}", p.display());
    }
    println!(
        "corpus: {} works, {} sentences, {} tokens of {} vocabulary words (min count {}); dim {dim}, window {}, {} noise words, sample {}, {} epochs, seed {}",
        split.works.len(),
        corpus.sentences.len(),
        corpus.tokens(),
        corpus.words(),
        cfg.min_count,
        cfg.window,
        cfg.negative,
        cfg.sample,
        cfg.epochs,
        cfg.seed
    );
    let t0 = Instant::now();
    let (vectors, epochs) = train_dyn(&corpus, &cfg, dim, |e| {
        if e.done < 1.0 {
            println!(
                "  epoch {}: {:.0}% done, loss so far {:.4}, {} pairs, lr {:.5}, {:.1} s",
                e.epoch,
                100.0 * e.done,
                e.loss,
                e.pairs,
                e.lr,
                e.seconds
            );
            return;
        }
        println!(
            "epoch {}/{}: loss {:.4} per pair, {} pairs, {} centre words kept, lr {:.5}, {:.1} s ({:.0} pairs/s){}",
            e.epoch,
            cfg.epochs,
            e.loss,
            e.pairs,
            e.kept,
            e.lr,
            e.seconds,
            e.pairs as f64 / e.seconds.max(1e-9),
            if e.cut_short { " — time budget reached, stopping" } else { "" }
        );
    })?;
    let train_s = t0.elapsed().as_secs_f64();
    println!("trained in {train_s:.1} s ({} epochs)", epochs.len());

    if let Some(dir) = a.save.parent() {
        std::fs::create_dir_all(dir)?;
    }
    vectors.save_word2vec_text(&a.save)?;
    println!(
        "saved {} vectors of {dim} to {} (word2vec text format)",
        vectors.words.len(),
        a.save.display()
    );

    for w in &a.neighbours {
        match vectors.nearest(w, 8) {
            Some(nn) => {
                let list: Vec<String> = nn.iter().map(|(x, c)| format!("{x} {c:.2}")).collect();
                println!("nearest to {w}: {}", list.join(", "));
            }
            None => println!("nearest to {w}: not in the vocabulary"),
        }
    }

    let mut line = String::from("spearman");
    for (name, file, key) in [
        ("WordSim-353", "wordsim353.tsv", "wordsim353"),
        ("SimLex-999", "simlex999.txt", "simlex999"),
    ] {
        let pairs = read_pairs(a.wordsim_dir.join(file))?;
        let s = evaluate(&vectors, &pairs);
        let rho = s.spearman.unwrap_or(f64::NAN);
        println!(
            "{name}: Spearman {rho:.4} on {} of {} pairs ({:.1}% coverage: both words in the vocabulary)",
            s.used,
            s.total,
            100.0 * s.used as f64 / s.total as f64
        );
        line.push_str(&format!(" {key} {rho:.4}"));
    }
    println!(
        "total {:.1} s (training {train_s:.1} s)",
        started.elapsed().as_secs_f64()
    );
    println!("{line}");
    Ok(())
}
