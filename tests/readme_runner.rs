//! The README's six-line training snippet (section "Training"), compiled and
//! run here on MNIST for one epoch: it must reach 95 % test accuracy. A
//! second test checks that the README's snippet is, line for line, the code
//! below, so the two cannot drift apart.
//!
//! Needs `data/mnist/` (`scripts/fetch-mnist`): without it the training
//! test fails when `CI=true` and is skipped with a message otherwise.

use std::io::Write;

// README-BEGIN
use kiln::data::DataLoader;
use kiln::prelude::*;
use kiln::train::{Classify, Trainer};

kiln::network! { pub struct Mlp { input: [784], fc1: Linear(512), relu, fc2: Linear(256), relu, fc3: Linear(10) } }

fn train(epochs: u64) -> kiln::Result<f64> {
    let data = Mnist::load("data/mnist")?;
    let mut net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(0))?;
    let train = DataLoader::new(data.train, 128).shuffle(0);
    let test = DataLoader::new(data.test, 1000);
    let report = Trainer::new().epochs(epochs).validate(&test).fit(
        &mut net,
        &mut Adam::new(1e-3),
        &train,
        Classify::new(),
    )?;
    Ok(report.last("test_acc").unwrap_or(0.0))
}
// README-END

#[test]
fn the_readme_snippet_trains_the_mlp() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if !dir.is_dir() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "MNIST is required in CI: run scripts/fetch-mnist"
        );
        let _ = writeln!(std::io::stderr(), "SKIPPED: {} is missing", dir.display());
        return;
    }
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let acc = train(1).unwrap();
    println!("test accuracy after 1 epoch: {acc:.4}");
    assert!(acc > 0.95, "test accuracy {acc}");
}

#[test]
fn the_readme_shows_this_code() {
    let root = env!("CARGO_MANIFEST_DIR");
    let me = std::fs::read_to_string(format!("{root}/tests/readme_runner.rs")).unwrap();
    let code = &me[me.find("// README-BEGIN\n").unwrap() + 16..me.find("// README-END").unwrap()];
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let start = readme
        .find("<!-- runner snippet: tests/readme_runner.rs -->\n```rust\n")
        .expect("the README's runner snippet marker");
    let block = &readme[start..];
    let block = &block[block.find("```rust\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    assert_eq!(
        block.trim(),
        code.trim(),
        "README.md's runner snippet differs from tests/readme_runner.rs"
    );
}
