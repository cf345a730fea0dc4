//! `examples/translate --smoke`, run through the example's own code (the
//! file is included as a module): 150 training steps of the date
//! translator, then greedy decoding and beam search on 200 unseen dates.
//! The loss must fall well below a uniform guess; the data must be what the
//! example promises (every format unambiguous, the split by date).

#[path = "../examples/translate/main.rs"]
#[allow(dead_code)]
mod translate;

use clap::Parser;
use std::collections::{HashMap, HashSet};
use translate::dates;

#[test]
fn translate_smoke_run_learns() {
    let args = translate::Args::parse_from(["translate", "--smoke"]);
    let out = translate::run(&args).unwrap();
    assert_eq!(out.losses.len(), 150);
    let uniform = (dates::TGT_VOCAB as f64).ln();
    let first = out.losses[0] as f64;
    let last10 = out.losses[140..].iter().map(|&l| l as f64).sum::<f64>() / 10.0;
    println!("loss {first:.4} → {last10:.4} (mean of the last 10 steps); uniform {uniform:.4}");
    assert!((first - uniform).abs() < 0.5, "first loss {first}");
    // 150 steps learn the ISO layout and much of the year and month.
    assert!(last10 < 0.5 * uniform, "the loss did not fall: {last10}");
    let (_, test) = *out.test_losses.last().unwrap();
    assert!(test < 0.5 * uniform, "test loss {test}");
    assert_eq!(out.decoded.len(), 200);
    // Every decoded string has the ISO shape `dddd-dd-dd` by now.
    let shaped = out
        .decoded
        .iter()
        .filter(|d| {
            let b = d.2.as_bytes();
            b.len() == 10 && b[4] == b'-' && b[7] == b'-'
        })
        .count();
    assert!(shaped >= 180, "{shaped} of 200 beam outputs are ISO-shaped");
    assert!((0.0..=1.0).contains(&out.beam_acc) && (0.0..=1.0).contains(&out.greedy_acc));
}

/// No string stands for two dates, in any format or across formats; every
/// string fits the source length and alphabet; the words are right.
#[test]
fn every_format_is_unambiguous() {
    let all = dates::all_dates();
    assert_eq!(all.len(), 36_525);
    assert_eq!(
        (all[0].y, all[0].m, all[0].d, all[0].weekday),
        (1950, 1, 1, 6)
    );
    let mut seen: HashMap<String, dates::Date> = HashMap::new();
    let mut ids = Vec::new();
    for t in &all {
        for f in 0..dates::FORMATS.len() {
            let s = dates::render(f, t);
            ids.clear();
            dates::encode_source(&s, &mut ids).unwrap();
            if let Some(other) = seen.insert(s.clone(), *t) {
                assert_eq!(other, *t, "{s:?} means two dates");
            }
        }
    }
    // 2011-03-03 was a Thursday.
    let d = all
        .iter()
        .find(|t| (t.y, t.m, t.d) == (2011, 3, 3))
        .unwrap();
    let written: Vec<String> = (0..dates::FORMATS.len())
        .map(|f| dates::render(f, d))
        .collect();
    assert_eq!(written, dates::FORMATS);
    let d = all
        .iter()
        .find(|t| (t.y, t.m, t.d) == (1977, 9, 27))
        .unwrap();
    assert_eq!(
        dates::render(4, d),
        "September twenty-seventh, nineteen seventy-seven"
    );
    assert_eq!(dates::render(0, d), "27th of September 1977");
    assert_eq!(dates::render(3, d), "09/27/77");
    let d = all
        .iter()
        .find(|t| (t.y, t.m, t.d) == (2000, 1, 12))
        .unwrap();
    assert_eq!(dates::render(13, d), "the twelfth of January, 2000");
    assert_eq!(dates::render(9, d), "12 January two thousand");
    assert_eq!(dates::iso(d), "2000-01-12");
    assert_eq!(
        dates::decode_target(&dates::encode_target("2000-01-12")),
        "2000-01-12"
    );
}

#[test]
fn the_test_dates_never_appear_in_training() {
    let s = dates::split(&mut kiln::prelude::rng(2011), 2000);
    assert_eq!(s.test.len(), 2000);
    assert_eq!(s.train.len(), 36_525 - 2000);
    let train: HashSet<_> = s.train.iter().collect();
    assert!(s.test.iter().all(|(_, t)| !train.contains(t)));
    // Each format is tested equally often.
    assert_eq!(s.test[0].0, dates::render(0, &s.test[0].1));
    assert_eq!(s.test[15].0, dates::render(1, &s.test[15].1));
}
