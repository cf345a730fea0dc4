//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`, grown with
//! `cargo +nightly fuzz run <target>`) through the same functions the fuzz
//! targets call, on stable: every file must be read without a panic.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| f(&bytes)).is_err() {
            panic!("{} panicked on {}", target, path.display());
        }
        n += 1;
    }
    assert!(n > 0, "no corpus files in {}", dir.display());
    eprintln!("{target}: replayed {n} files");
}

#[test]
fn checkpoint_corpus() {
    replay("checkpoint", kiln::fuzzing::checkpoint);
}

#[test]
fn idx_corpus() {
    replay("idx", kiln::fuzzing::idx);
}

#[test]
fn csv_corpus() {
    replay("csv", kiln::fuzzing::csv);
}

#[test]
fn tokenizer_corpus() {
    replay("tokenizer", kiln::fuzzing::tokenizer);
}

/// Every crash a fuzzing campaign found is a file in
/// `fuzz/regressions/<target>/` (beside a README, so the directory exists
/// when empty); each must now be read without a panic. A missing directory
/// fails the test, so the replay cannot silently check nothing.
#[test]
fn crashes_found_while_fuzzing_stay_fixed() {
    let mut n = 0;
    for (target, f) in [
        ("checkpoint", kiln::fuzzing::checkpoint as fn(&[u8])),
        ("idx", kiln::fuzzing::idx),
        ("csv", kiln::fuzzing::csv),
        ("tokenizer", kiln::fuzzing::tokenizer),
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions")
            .join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(
            dir.join("README.md").is_file(),
            "{}/README.md is missing",
            dir.display()
        );
        for entry in entries {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == "README.md") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                std::panic::catch_unwind(|| f(&bytes)).is_ok(),
                "{target} panicked on {}",
                path.display()
            );
            n += 1;
        }
    }
    eprintln!("replayed {n} regression files");
}

#[test]
fn the_corpus_holds_a_checkpoint_that_loads() {
    // So that fuzzing starts from the path where everything fits, too.
    use kiln::prelude::*;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/checkpoint/adam-linear-3x2");
    let c = kiln::checkpoint::Checkpoint::read(&path).unwrap();
    let mut lin = <kiln::layers::linear::Linear<f32, Cpu, 3, 2> as Build<f32, Cpu>>::build(
        &Cpu,
        &mut rng(0),
        Default::default(),
    )
    .unwrap();
    let mut opt = Adam::new(0.1);
    c.load_training(&mut lin, &mut opt, &path).unwrap();
    assert_eq!(lin.weight.to_vec().unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!((opt.steps(), opt.lr), (3, 0.001));
    assert_eq!(c.rng("rng").unwrap().get_word_pos(), 52);
    assert_eq!(kiln::data::Position::load(&c).unwrap().batch, 2);
}
