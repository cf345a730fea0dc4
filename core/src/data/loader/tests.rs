use super::*;

/// `n` samples of `dim` values; sample `i` is all `i`, label `i % classes`.
fn ramp(n: usize, dim: usize, classes: u32) -> Dataset {
    Dataset {
        x: (0..n).flat_map(|i| vec![i as f32; dim]).collect(),
        y: (0..n as u32).map(|i| i % classes).collect(),
        dim,
    }
}

fn firsts(b: &Batch, dim: usize) -> Vec<usize> {
    b.x.chunks(dim).map(|s| s[0] as usize).collect()
}

#[test]
fn a_saved_position_must_lie_within_the_run() {
    let p = |epoch, batch| Position {
        epoch,
        batch,
        seed: 0,
    };
    assert!(p(1, 31).check_within(500, 2, 469).is_ok());
    assert!(p(2, 0).check_within(938, 2, 469).is_ok(), "the run's end");
    for (pos, step) in [
        (p(1, 100_000), 500),
        (p(u64::MAX, 31), 500),
        (p(1, 31), 10_000),
        (p(1, 31), 3),
    ] {
        let e = pos.check_within(step, 2, 469).unwrap_err().to_string();
        assert!(
            e.contains("is not within this run of 2 epochs of 469 batches (938 steps)"),
            "{e}"
        );
    }
}

#[test]
fn a_position_past_the_end_of_the_epoch_is_an_error() {
    let l = DataLoader::new(ramp(10, 2, 3), 3);
    assert_eq!(
        l.epoch_from(0, 4).unwrap().count(),
        0,
        "the end itself is fine"
    );
    let e = l.epoch_from(0, 5).err().unwrap().to_string();
    assert!(
        e.contains("batch 5 is past the end of an epoch of 4 batches"),
        "{e}"
    );
}

#[test]
fn batches_in_order_with_and_without_the_short_last_one() {
    let l = DataLoader::new(ramp(10, 2, 3), 3);
    let got: Vec<Vec<usize>> = l.epoch(0).unwrap().map(|b| firsts(&b, 2)).collect();
    assert_eq!(got, [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]);
    let b = l.epoch(0).unwrap().nth(1).unwrap();
    assert_eq!((b.y.clone(), b.index, b.epoch), (vec![0, 1, 2], 1, 0));
    let l = l.drop_last(true);
    assert_eq!(l.epoch(0).unwrap().len(), 3);
    assert_eq!((l.batches_per_epoch(), l.samples_per_epoch()), (3, 9));
    assert_eq!(
        l.epoch(0).unwrap().map(|b| b.len()).collect::<Vec<_>>(),
        [3, 3, 3]
    );
}

#[test]
fn shuffling_is_a_seeded_permutation_per_epoch() {
    let l = DataLoader::new(ramp(20, 1, 2), 6).shuffle(9);
    let epoch = |l: &DataLoader, e| -> Vec<usize> {
        l.epoch(e).unwrap().flat_map(|b| firsts(&b, 1)).collect()
    };
    let (a, b) = (epoch(&l, 0), epoch(&l, 1));
    let mut s = a.clone();
    s.sort();
    assert_eq!(s, (0..20).collect::<Vec<_>>());
    assert_ne!(a, b);
    assert_eq!(a, epoch(&DataLoader::new(ramp(20, 1, 2), 6).shuffle(9), 0));
    assert_ne!(a, epoch(&DataLoader::new(ramp(20, 1, 2), 6).shuffle(10), 0));
    assert_eq!(a, l.order(0));
    // Labels travel with their samples.
    for b in l.epoch(3).unwrap() {
        for (v, y) in firsts(&b, 1).iter().zip(&b.y) {
            assert_eq!(*v as u32 % 2, *y);
        }
    }
}

#[test]
fn background_loading_and_resuming_give_the_same_batches() {
    let make = |prefetch| {
        DataLoader::new(ramp(30, 16, 3), 4)
            .shuffle(1)
            .image(1, 4, 4)
            .random_crop(1)
            .random_flip(0.5)
            .color_jitter(0.3, 0.3)
            .normalize(&[0.5], &[2.0])
            .cutmix(1.0, 0.7, 3)
            .prefetch(prefetch)
    };
    let all = |l: &DataLoader, e| -> Vec<(Vec<f32>, Vec<u32>, Vec<f32>)> {
        l.epoch(e)
            .unwrap()
            .map(|b| (b.x.clone(), b.y.clone(), b.soft.clone()))
            .collect()
    };
    let (here, there) = (make(0), make(3));
    assert_eq!(all(&here, 2), all(&there, 2));
    // Resuming at batch 5 of epoch 2 gives the rest of that epoch.
    let rest: Vec<_> = there
        .resume(Position {
            epoch: 2,
            batch: 5,
            seed: 1,
        })
        .unwrap()
        .map(|b| (b.x.clone(), b.y.clone(), b.soft.clone()))
        .collect();
    assert_eq!(rest, all(&here, 2)[5..]);
    assert!(here
        .resume(Position {
            epoch: 2,
            batch: 5,
            seed: 2
        })
        .is_err());
    // The position after the last batch is the next epoch's start.
    let last = here.epoch(2).unwrap().last().unwrap();
    assert_eq!(
        here.position_after(&last),
        Position {
            epoch: 3,
            batch: 0,
            seed: 1
        }
    );
    // Stopping early stops the thread (the test would hang otherwise).
    let mut it = there.epoch(0).unwrap();
    assert!(it.next().is_some());
    drop(it);
}

#[test]
fn buffers_are_reused() {
    let l = DataLoader::new(ramp(12, 8, 2), 4);
    let mut it = l.epoch(0).unwrap();
    let b = it.next().unwrap();
    let p = (b.x.as_ptr(), b.y.as_ptr());
    drop(b);
    let b = it.next().unwrap();
    assert_eq!((b.x.as_ptr(), b.y.as_ptr()), p);
}

#[test]
fn normalisation_by_hand() {
    // Two channels of 1×2: sample 0 = [0, 1 | 2, 3]; mean (1, 2), std (0.5, 4).
    let d = Dataset {
        x: vec![0.0, 1.0, 2.0, 3.0],
        y: vec![0],
        dim: 4,
    };
    let l = DataLoader::new(d, 1)
        .image(2, 1, 2)
        .normalize(&[1.0, 2.0], &[0.5, 4.0]);
    let b = l.epoch(0).unwrap().next().unwrap();
    assert_eq!(b.x, [-2.0, 0.0, 0.0, 0.25]);
    // Without an image shape, one mean and std for all values.
    let d = Dataset {
        x: vec![0.0, 1.0],
        y: vec![0],
        dim: 2,
    };
    let b = DataLoader::new(d, 1)
        .normalize(&[0.5], &[0.5])
        .epoch(0)
        .unwrap()
        .next()
        .unwrap();
    assert_eq!(b.x, [-1.0, 1.0]);
}

#[test]
fn augmentations_happen_at_their_rates() {
    // 2000 images [0, 1] (1×1×2): a flip gives [1, 0].
    let d = Dataset {
        x: [0.0, 1.0].repeat(2000),
        y: vec![0; 2000],
        dim: 2,
    };
    let count = |p: f64| -> usize {
        let l = DataLoader::new(d.clone(), 100)
            .seed(4)
            .image(1, 1, 2)
            .random_flip(p);
        l.epoch(0)
            .unwrap()
            .map(|b| b.x.chunks(2).filter(|s| s[0] == 1.0).count())
            .sum()
    };
    assert_eq!((count(0.0), count(1.0)), (0, 2000));
    let half = count(0.5);
    assert!((900..1100).contains(&half), "{half}");
    // Crop of a 1×1 image with padding 1: 9 offsets, only the centre keeps the pixel.
    let d = Dataset {
        x: vec![1.0; 1800],
        y: vec![0; 1800],
        dim: 1,
    };
    let l = DataLoader::new(d, 100).image(1, 1, 1).random_crop(1);
    let kept: f32 = l.epoch(0).unwrap().map(|b| b.x.iter().sum::<f32>()).sum();
    assert!((150.0..250.0).contains(&kept), "{kept}");
    // Brightness only: values stay in [0, 1] and vary around the original.
    let d = Dataset {
        x: vec![0.5; 1000],
        y: vec![0; 1000],
        dim: 1,
    };
    let l = DataLoader::new(d, 100)
        .image(1, 1, 1)
        .color_jitter(0.4, 0.0);
    let v: Vec<f32> = l.epoch(0).unwrap().flat_map(|b| b.x.clone()).collect();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    assert!(
        v.iter().all(|&x| (0.3..=0.7).contains(&x)) && (mean - 0.5).abs() < 0.02,
        "{mean}"
    );
}

#[test]
fn cutmix_soft_labels_match_the_pasted_area() {
    // Sample i is a 4×4 image of value y_i + 1, 3 classes.
    let n = 60;
    let y: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
    let x: Vec<f32> = y.iter().flat_map(|&c| vec![(c + 1) as f32; 16]).collect();
    let l = DataLoader::new(Dataset { x, y, dim: 16 }, 6)
        .shuffle(2)
        .image(1, 4, 4)
        .cutmix(1.0, 1.0, 3);
    let mut mixed = 0;
    for b in l.epoch(0).unwrap() {
        for (k, row) in b.soft.chunks(3).enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            // The soft label is the share of each class's pixels.
            let img = &b.x[k * 16..(k + 1) * 16];
            for c in 0..3 {
                let share = img.iter().filter(|&&v| v == (c + 1) as f32).count() as f32 / 16.0;
                assert!((row[c] - share).abs() < 1e-6, "{row:?} {img:?}");
            }
            mixed += (row.iter().filter(|&&v| v > 0.0).count() > 1) as usize;
        }
    }
    assert!(mixed > 10, "{mixed}");
}

#[test]
fn bad_configurations_are_errors() {
    let d = ramp(4, 4, 2);
    assert!(DataLoader::new(d.clone(), 0).epoch(0).is_err());
    assert!(DataLoader::new(d.clone(), 2)
        .image(1, 3, 3)
        .epoch(0)
        .is_err());
    assert!(DataLoader::new(d.clone(), 2)
        .random_flip(0.5)
        .epoch(0)
        .is_err());
    assert!(DataLoader::new(d.clone(), 2)
        .image(1, 2, 2)
        .normalize(&[0.0, 1.0], &[1.0, 1.0])
        .epoch(0)
        .is_err());
    assert!(DataLoader::new(d.clone(), 2)
        .image(1, 2, 2)
        .normalize(&[0.0], &[0.0])
        .epoch(0)
        .is_err());
    let e = DataLoader::new(d, 2)
        .image(1, 2, 2)
        .cutmix(1.0, 1.0, 1)
        .epoch(0)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "label 1 at sample 1 is out of range for 1 classes"
    );
}

#[test]
fn positions_round_trip_through_a_checkpoint() {
    let mut c = Checkpoint::new();
    let p = Position {
        epoch: 3,
        batch: 17,
        seed: u64::MAX,
    };
    p.save(&mut c);
    assert_eq!(Position::load(&c).unwrap(), p);
    assert!(Position::load(&Checkpoint::new()).is_err());
}
