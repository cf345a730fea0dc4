//! Bad input and faults (issue 13): saves that leave nothing behind, whatever
//! stops them (an error, a full disk, `kill -9`), targets that are not
//! regular files refused, and sizes a user can type that are errors rather
//! than aborts.

use kiln::checkpoint::{self, Checkpoint};
use kiln::prelude::*;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

kiln::network! {
    pub struct Net {
        input: [6],
        fc1: Linear(5),
        relu,
        fc2: Linear(3),
    }
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-faults-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The names in `d` containing `.tmp-` (temporary files of saves).
fn temps(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

fn net(seed: u64) -> Net<f32, Cpu> {
    Net::init(&Cpu, &mut kiln::rng(seed)).unwrap()
}

/// A checkpoint of `n` values that all equal `i`, with `i` in its metadata.
fn numbered(i: u64, n: usize) -> Checkpoint {
    let mut c = Checkpoint::new();
    c.add_values("w", &[n], &vec![i as f32; n]);
    c.set_meta("i", i);
    c
}

// ---- A: saves leave nothing behind -----------------------------------------------------------

#[test]
fn an_empty_path_is_an_error_that_says_so() {
    let e = checkpoint::save(&net(1), "").unwrap_err().to_string();
    assert!(e.contains("path is empty"), "{e}");
    let e = checkpoint::load(&mut net(1), "").unwrap_err().to_string();
    assert!(e.starts_with("\"\" (an empty path): "), "{e}");
}

#[test]
fn a_directory_is_refused_and_left_alone() {
    let d = dir("isdir");
    let target = d.join("model.safetensors");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"keep").unwrap();
    let e = checkpoint::save(&net(1), &target).unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("a directory"),
        "{e}"
    );
    assert_eq!(std::fs::read(target.join("inside")).unwrap(), b"keep");
    assert!(temps(&d).is_empty(), "{:?}", temps(&d));
}

#[cfg(unix)]
#[test]
fn device_nodes_and_symlinks_to_them_are_refused() {
    use std::os::unix::fs::FileTypeExt;
    let d = dir("devices");
    let link_dev = d.join("null.safetensors");
    std::os::unix::fs::symlink("/dev/null", &link_dev).unwrap();
    let link_dir = d.join("dir.safetensors");
    std::fs::create_dir(d.join("real")).unwrap();
    std::os::unix::fs::symlink(d.join("real"), &link_dir).unwrap();
    for (p, what) in [
        (Path::new("/dev/null"), "a character device"),
        (Path::new("/dev/full"), "a character device"),
        (&link_dev, "a character device"),
        (&link_dir, "a directory"),
    ] {
        if !p.exists() {
            continue;
        }
        let e = checkpoint::save(&net(1), p).unwrap_err().to_string();
        assert!(e.contains(&*p.to_string_lossy()) && e.contains(what), "{e}");
    }
    // Run as root, the old code replaced the node with a regular file.
    for p in ["/dev/null", "/dev/full"] {
        let p = Path::new(p);
        if p.exists() {
            let t = std::fs::metadata(p).unwrap().file_type();
            assert!(t.is_char_device(), "{} is no longer a device", p.display());
        }
    }
    assert!(std::fs::symlink_metadata(&link_dev)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(temps(&d).is_empty(), "{:?}", temps(&d));
    // A symlink to a regular file is fine (the link is replaced by the file).
    let real = d.join("real.safetensors");
    checkpoint::save(&net(1), &real).unwrap();
    let link_file = d.join("file.safetensors");
    std::os::unix::fs::symlink(&real, &link_file).unwrap();
    checkpoint::save(&net(2), &link_file).unwrap();
    assert!(temps(&d).is_empty(), "{:?}", temps(&d));
}

#[test]
fn a_failed_save_removes_its_temporary_file_and_keeps_the_old_one() {
    let d = dir("failed");
    let p = d.join("model.safetensors");
    numbered(1, 100).save(&p).unwrap();
    let good = std::fs::read(&p).unwrap();
    let e = numbered(2, 100).save_failing(&p).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    assert!(temps(&d).is_empty(), "{:?}", temps(&d));
    assert_eq!(std::fs::read(&p).unwrap(), good);
    // A directory that does not exist: an error naming the path, nothing made.
    let missing = d.join("no/such/dir/model.safetensors");
    let e = numbered(2, 100).save(&missing).unwrap_err().to_string();
    assert!(e.contains("no/such/dir/model.safetensors"), "{e}");
    assert!(temps(&d).is_empty(), "{:?}", temps(&d));
}

#[test]
fn stale_temporary_files_of_dead_processes_are_removed_by_the_next_save() {
    let d = dir("stale");
    let p = d.join("model.safetensors");
    // The pid of a process that has exited and been reaped.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "no_such_test", "--test-threads=1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = format!(".model.safetensors.tmp-{dead}");
    std::fs::write(d.join(&stale), b"torn").unwrap();
    // Not ours to remove: a live process's, another target's, other names.
    let keep = [
        ".model.safetensors.tmp-1".to_string(),
        format!(".other.safetensors.tmp-{dead}"),
        format!("model.safetensors.tmp-{dead}"),
        format!(".model.safetensors.tmp-{dead}.bak"),
    ];
    for k in &keep {
        std::fs::write(d.join(k), b"x").unwrap();
    }
    checkpoint::save(&net(1), &p).unwrap();
    let mut left = temps(&d);
    left.sort();
    let mut want = keep.to_vec();
    want.sort();
    assert_eq!(left, want);
}

/// The child side of the kill test: saves numbered checkpoints to the path in
/// `KILN_FAULTS_SAVE_LOOP` forever, printing `saved <i>` after each.
#[test]
fn save_loop_child() {
    let Some(p) = std::env::var_os("KILN_FAULTS_SAVE_LOOP") else {
        return;
    };
    let start: u64 = std::env::var("KILN_FAULTS_SAVE_START")
        .unwrap()
        .parse()
        .unwrap();
    for i in start.. {
        numbered(i, 1 << 20).save(&p).unwrap();
        println!("saved {i}");
    }
}

#[test]
fn kill_9_during_saves_keeps_the_last_good_checkpoint_and_no_temporary_file() {
    let d = dir("kill");
    let p = d.join("model.safetensors");
    let exe = std::env::current_exe().unwrap();
    // The child test's name in this binary: its module path without the
    // crate's name (`faults::save_loop_child` in `tests/integration.rs`).
    let child_test = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::save_loop_child"),
        None => "save_loop_child".to_string(),
    };
    // xorshift64 with a fixed seed: the kill delays are the same every run.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let (mut done, mut left_temp) = (0u64, 0);
    for _ in 0..20 {
        let mut child = Command::new(&exe)
            .args(["--exact", &child_test, "--nocapture", "--test-threads=1"])
            .env("KILN_FAULTS_SAVE_LOOP", &p)
            .env("KILN_FAULTS_SAVE_START", (done + 1).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // Wait for one complete save, then kill at a random point after it.
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child exited");
            if line.starts_with("saved ") {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(next() % 30_000));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        let last: u64 = std::iter::once(line.as_str())
            .chain(rest.lines())
            .filter_map(|l| l.trim().strip_prefix("saved ")?.parse().ok())
            .max()
            .unwrap();
        // The file holds the last reported save or the one after it (done
        // but not yet reported), whole.
        let c = Checkpoint::read(&p).unwrap();
        let i: u64 = c.meta("i").unwrap();
        assert!(
            i == last || i == last + 1,
            "file has {i}, last reported {last}"
        );
        let w = c.values::<f32>("w").unwrap();
        assert!(w.len() == 1 << 20 && w.iter().all(|&v| v == i as f32));
        if !temps(&d).is_empty() {
            left_temp += 1;
        }
        done = i;
        // The next save (this process) removes the dead child's temporary file.
        numbered(i, 16).save(&p).unwrap();
        assert!(temps(&d).is_empty(), "{:?}", temps(&d));
    }
    eprintln!("{left_temp} of 20 kills left a temporary file, all removed by the next save");
}

// ---- B: no abort from a size a user can type --------------------------------------------------

#[test]
fn a_batch_whose_element_count_wraps_is_an_error() {
    let big = usize::MAX / 784 + 2;
    let mut t = Tensor::<S1<784>>::zeros(&Cpu, 2).unwrap();
    let e = t.set_batch(big).unwrap_err().to_string();
    assert!(e.contains(&big.to_string()) && e.contains("784"), "{e}");
    assert_eq!(
        t.batch(),
        2,
        "a failed set_batch must not change the tensor"
    );
    t.set_batch(5).unwrap();
    assert_eq!(t.to_vec().unwrap().len(), 5 * 784);
    let e = Tensor::<S1<784>>::zeros(&Cpu, big)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("Tensor::zeros") && e.contains(&big.to_string()),
        "{e}"
    );
    let e = Tensor::<S1<784>>::from_vec(&Cpu, big, vec![0.0; 16])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&big.to_string()), "{e}");
    let mut tok = Tokens::<S1<4>, 10>::zeros::<f32>(&Cpu, 1).unwrap();
    let big = usize::MAX / 4 + 2;
    let e = tok.set_batch::<f32>(big).unwrap_err().to_string();
    assert!(e.contains(&big.to_string()), "{e}");
    assert!(Tokens::<S1<4>, 10>::zeros::<f32>(&Cpu, big).is_err());
}

#[test]
fn an_allocation_no_machine_can_hold_is_an_error_naming_the_size() {
    // 2^36 samples of 1024 f32 = 2^48 bytes, more than the 47-bit user
    // address space, so it fails whatever the overcommit policy.
    let n = 1usize << 36;
    let e = Tensor::<S1<1024>>::zeros(&Cpu, n)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(&(n * 1024).to_string()) && e.contains("bytes"),
        "{e}"
    );
    let mut t = Tensor::<S1<1024>>::zeros(&Cpu, 1).unwrap();
    let e = t.set_batch(n).unwrap_err().to_string();
    assert!(e.contains(&(n * 1024).to_string()), "{e}");
    assert_eq!(t.batch(), 1);
    t.set_batch(2).unwrap();
}

#[test]
fn absurd_thread_counts_are_errors_not_aborts() {
    for n in [10_000, 1 << 20, usize::MAX] {
        let e = kiln::set_threads(n).unwrap_err().to_string();
        assert!(
            e.contains(&n.to_string()) && e.contains("set_threads"),
            "{e}"
        );
    }
    assert!(kiln::max_threads() >= 4 && kiln::max_threads() <= 1024);
}

// ---- C: hyper-parameters outside their domain --------------------------------------------------

kiln::network! {
    pub struct Tiny {
        input: [3],
        fc: Linear(2),
    }
}

/// One step of `opt` on a tiny network: the error, and whether any parameter changed.
fn step_with<O: Optimizer<f32, Cpu>>(mut opt: O) -> (Option<String>, bool) {
    use kiln::Path as PPath;
    let dev = Cpu;
    let mut net = Tiny::<f32, Cpu>::init(&dev, &mut kiln::rng(1)).unwrap();
    let values = |m: &Tiny<f32, Cpu>| {
        let mut v = Vec::new();
        m.visit(&PPath::ROOT, &mut |_, p| {
            v.extend_from_slice(&p.value[..p.numel])
        });
        v
    };
    let before = values(&net);
    let x = Tensor::<S1<3>>::from_slice(&dev, &[1.0, -2.0, 0.5, 0.3, 0.2, -0.1]).unwrap();
    let y = Tensor::<S1<2>>::from_slice(&dev, &[0.5, -0.5, 1.0, 0.0]).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    let mut dy = Tensor::<S1<2>>::zeros(&dev, 2).unwrap();
    let out = net.forward_train(&x, &mut tape).unwrap();
    mse(out, &y, Some(&mut dy)).unwrap();
    net.backward(&mut tape, &dy, &mut grads).unwrap();
    let e = opt.step(&mut net, &grads).err().map(|e| e.to_string());
    (e, values(&net) != before)
}

#[test]
fn bad_learning_rates_and_momenta_fail_the_first_step_naming_them() {
    type Opt = Box<dyn Optimizer<f32, Cpu>>;
    let cases: Vec<(Opt, &str)> = vec![
        (
            Box::new(Adam::new(-1.0)),
            "Adam: the learning rate must be a finite number ≥ 0, got -1",
        ),
        (
            Box::new(Adam::new(f64::NAN)),
            "Adam: the learning rate must be a finite number ≥ 0, got NaN",
        ),
        (
            Box::new(Adam::adamw(1e-3).betas(0.9, 1.0)),
            "AdamW: beta2 must be in [0, 1), got 1",
        ),
        (
            Box::new(Sgd::new(f64::INFINITY)),
            "Sgd: the learning rate must be a finite number ≥ 0, got inf",
        ),
        (
            Box::new(Sgd::new(0.1).momentum(-0.9)),
            "Sgd: momentum must be a finite number ≥ 0, got -0.9",
        ),
        (
            Box::new(kiln::optim::RmsProp::new(-0.01)),
            "RmsProp: the learning rate",
        ),
        (
            Box::new(kiln::optim::Adagrad::new(0.1).eps(-1.0)),
            "Adagrad: eps must be",
        ),
    ];
    for (opt, want) in cases {
        let (e, changed) = step_with(opt);
        let e = e.expect("a bad hyper-parameter was accepted");
        assert!(e.contains(want), "{e}\nwant {want}");
        assert!(!changed, "a refused step changed the parameters");
    }
    // Zero is a valid rate (a frozen step); a schedule's NaN is caught at the step.
    assert_eq!(step_with(Sgd::new(0.0)), (None, false));
    let mut opt = Sgd::new(0.1);
    Optimizer::<f32, Cpu>::set_lr(&mut opt, f64::NAN);
    assert!(step_with(opt).0.unwrap().contains("NaN"));
}

#[test]
fn schedules_refuse_negative_and_nan_rates() {
    use kiln::schedule::*;
    let e = StepLr::new(-0.1, 10, 0.1).unwrap_err().to_string();
    assert!(
        e.contains("StepLr") && e.contains("base_lr") && e.contains("-0.1"),
        "{e}"
    );
    assert!(StepLr::new(0.1, 10, f64::NAN).is_err());
    assert!(CosineAnnealingLr::new(0.1, 10, -1.0).is_err());
    assert!(CosineAnnealingWarmRestarts::new(f64::NAN, 10, 1, 0.0).is_err());
    assert!(ConstantLr::new(-1.0, 0.5, 3).is_err());
    assert!(LinearLr::new(-1.0, 0.5, 1.0, 3).is_err());
    assert!(WarmupCosine::new(f64::INFINITY, 1, 10, 0.0).is_err());
    assert!(WarmupCosine::new(1e-3, 1, 10, -1e-4).is_err());
    assert!(StepLr::new(0.1, 10, 0.5).is_ok());
}

// ---- checkpoints that hold poison ---------------------------------------------------------------

/// A trained step's checkpoint (model and Adam state), as a resume reads it.
fn trained() -> (Net<f32, Cpu>, Adam, Checkpoint) {
    let mut n = net(3);
    let mut opt = Adam::new(1e-2);
    let x = Tensor::<S1<6>>::from_slice(&Cpu, &[0.5; 12]).unwrap();
    let y = Labels::<3>::new::<f32>(&Cpu, &[0u8, 2]).unwrap();
    let (mut tape, mut grads) = (n.tape().unwrap(), n.grads().unwrap());
    let mut d = Tensor::empty(&Cpu).unwrap();
    let logits = n.forward_train(&x, &mut tape).unwrap();
    cross_entropy(logits, &y, Some(&mut d)).unwrap();
    n.backward(&mut tape, &d, &mut grads).unwrap();
    opt.step(&mut n, &grads).unwrap();
    let mut c = Checkpoint::new();
    c.add_module("", &n).unwrap();
    c.add_optimizer(&n, &opt).unwrap();
    (n, opt, c)
}

/// Replaces element `i` of the f32 tensor `name` with `v`.
fn poison(c: &mut Checkpoint, name: &str, i: usize, v: f32) {
    let t = c.tensors.get_mut(name).unwrap();
    t.bytes[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn non_finite_weights_and_optimizer_state_are_refused_naming_the_tensor() {
    let d = dir("poison");
    let p = d.join("run.safetensors");
    for (name, i, v, says) in [
        ("fc1.weight", 7, f32::NAN, "`fc1.weight`: element 7 is NaN"),
        ("fc2.bias", 1, f32::INFINITY, "`fc2.bias`: element 1 is inf"),
        (
            "optim.state.fc1.weight.exp_avg_sq",
            0,
            f32::NAN,
            "`optim.state.fc1.weight.exp_avg_sq`: element 0 is NaN",
        ),
    ] {
        let (mut n, mut opt, mut c) = trained();
        let before = n.fc1.weight.to_vec().unwrap();
        poison(&mut c, name, i, v);
        c.save(&p).unwrap();
        let c = Checkpoint::read(&p).unwrap();
        let e = c
            .load_training(&mut n, &mut opt, &p)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says) && e.contains("run.safetensors"), "{e}");
        assert_eq!(n.fc1.weight.to_vec().unwrap(), before, "nothing loaded");
        // Asked for explicitly (debugging a diverged run), it loads.
        let mut c = c;
        c.allow_non_finite = true;
        c.load_training(&mut n, &mut opt, &p).unwrap();
    }
    // A weight alone through checkpoint::load, and a NaN learning rate in
    // the optimizer's metadata.
    let (mut n, mut opt, mut c) = trained();
    poison(&mut c, "fc1.weight", 2, f32::NEG_INFINITY);
    c.set_meta("optim.lr", f64::NAN);
    c.save(&p).unwrap();
    let e = checkpoint::load(&mut n, &p).unwrap_err().to_string();
    assert!(
        e.contains("element 2 is -inf (1 non-finite value in all)"),
        "{e}"
    );
    let e = Checkpoint::read(&p)
        .unwrap()
        .load_optimizer(&n, &mut opt, &p)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("metadata `optim.lr` = NaN: not finite"),
        "{e}"
    );
}
