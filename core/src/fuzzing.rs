//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`, run with
//! `cargo +nightly fuzz run <target>`), kept here so that the stable test
//! `tests/fuzz_corpus.rs` replays the committed corpus through exactly the
//! same code. Each must return normally for every input: errors are fine,
//! panics (and aborts, and unbounded allocations) are bugs.

use crate::checkpoint::Checkpoint;
use crate::data::csv::{parse_csv, CsvOptions};
use crate::data::idx::{maybe_gunzip, parse_idx};
use crate::data::text::{CharTokenizer, WordTokenizer};
use crate::data::Position;
use crate::layers::linear::Linear;
use crate::module::Build;
use crate::optim::{Adam, Optimizer};
use crate::train::History;
use crate::Cpu;

/// The checkpoint reader: parse, then everything a resume reads from a
/// parsed checkpoint (model and optimizer state checked and loaded into a
/// 3→2 `Linear`, the generator, the loader position, the history).
pub fn checkpoint(data: &[u8]) {
    let Ok(c) = Checkpoint::parse(data) else {
        return;
    };
    let Ok(mut lin) = Linear::<f32, Cpu, 3, 2>::build(&Cpu, &mut crate::rng(0), Default::default())
    else {
        return;
    };
    let _ = c.module_problems("", &lin);
    let mut opt = Adam::<f32, Cpu>::new(1e-3);
    let _ = c.load_training(&mut lin, &mut opt, std::path::Path::new("fuzz"));
    let _ = opt.state(&Cpu);
    // An f64 model: every stored F32 tensor is a dtype mismatch.
    if let Ok(l64) = Linear::<f64, Cpu, 3, 2>::build(&Cpu, &mut crate::rng(0), Default::default()) {
        let _ = c.optimizer_state::<f64, Cpu, _>(&l64);
    }
    let _ = c.rng("rng");
    let _ = Position::load(&c);
    if let Some(h) = c.metadata.get("history") {
        let _ = History::from_jsonl(h);
    }
    for name in c.tensors.keys() {
        let _ = c.values::<f32>(name);
    }
}

/// The IDX reader: gunzip when gzipped, then parse at ranks 1 to 4.
pub fn idx(data: &[u8]) {
    let Ok(bytes) = maybe_gunzip(data.to_vec()) else {
        return;
    };
    for rank in 1..=4 {
        let _ = parse_idx(&bytes, rank);
    }
}

/// The CSV reader: the first byte picks the options (header or not; one of
/// five delimiters), the rest is the file; a table read is then turned into
/// data sets with the label in its first and last column.
pub fn csv(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let opts = CsvOptions {
        header: sel & 1 == 0,
        delimiter: [b',', b';', b'\t', b' ', b'|'][(sel as usize >> 1) % 5],
    };
    let Ok(t) = parse_csv(rest, &opts) else {
        return;
    };
    let _ = t.dataset(0, 10);
    let _ = t.dataset(t.columns.saturating_sub(1), 3);
    if let Some(name) = t.header.first() {
        let _ = t.column(name);
    }
}

/// The tokenizer files (`tokenizer.char`, the word vocabulary with counts):
/// the first byte picks the kind, the rest up to the first NUL is the file
/// (as UTF-8, lossily), what follows is text to encode. A file that parses
/// must round-trip through its own file text, and encoded text must decode.
pub fn tokenizer(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let cut = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let file = String::from_utf8_lossy(&rest[..cut]);
    let text = String::from_utf8_lossy(rest.get(cut + 1..).unwrap_or(&[]));
    if sel & 1 == 0 {
        let Ok(t) = CharTokenizer::parse(&file) else {
            return;
        };
        let again = CharTokenizer::parse(&t.to_file_text()).expect("a parsed file round-trips");
        assert_eq!(again.symbols(), t.symbols(), "char tokenizer round trip");
        if let Ok(ids) = t.encode(&text) {
            let back = t.decode(&ids).expect("encoded ids decode");
            assert_eq!(back, text, "char tokenizer encode/decode");
        }
        let _ = t.decode(&[0, u32::MAX, t.vocab_size() as u32]);
    } else {
        let Ok(t) = WordTokenizer::parse(&file) else {
            return;
        };
        let again = WordTokenizer::parse(&t.to_file_text()).expect("a parsed file round-trips");
        assert_eq!(again.words(), t.words(), "word tokenizer round trip");
        let ids = t.encode(&text);
        let _ = t.decode(&ids);
        let _ = t.decode(&[u32::MAX]);
    }
}
