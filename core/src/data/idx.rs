//! The IDX format of MNIST (and Fashion-MNIST): a big-endian header — two zero
//! bytes, a type byte (0x08 = unsigned byte), the number of dimensions — then
//! one big-endian `u32` per dimension, then the values.
//!
//! The reader checks every part of that promise and names the file and the
//! fault on any violation; it never panics on a corrupt or truncated file.
//! Gzipped files (Fashion-MNIST's `*.gz`) are recognised by their magic bytes
//! and decompressed first, with the same checks, and a limit on the
//! decompressed size so a corrupt or hostile file cannot exhaust memory.

use crate::error::{Error, Result};
use std::path::Path;

/// A decoded IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// Dimensions, outermost first (`[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an unsigned-byte IDX file and checks that it has `rank` dimensions.
pub fn read_idx(path: &Path, rank: usize) -> Result<Idx> {
    let bytes = crate::data::read_file(path)?;
    let bytes = maybe_gunzip(bytes).map_err(|msg| Error::Format {
        path: path.to_path_buf(),
        msg,
    })?;
    parse_idx(&bytes, rank).map_err(|msg| Error::Format {
        path: path.to_path_buf(),
        msg,
    })
}

/// Largest decompressed IDX file accepted (the MNIST training images are 47 MB).
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// Decompresses gzip data (recognised by its magic bytes `1f 8b`); other
/// data passes through unchanged.
pub fn maybe_gunzip(bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .take(MAX_IDX_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt gzip data: {e}"))?;
    if out.len() as u64 > MAX_IDX_BYTES {
        return Err(format!("decompresses to more than {MAX_IDX_BYTES} bytes"));
    }
    Ok(out)
}

/// Decodes IDX bytes; the error says what is wrong.
pub fn parse_idx(bytes: &[u8], rank: usize) -> std::result::Result<Idx, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "truncated IDX header: {} bytes, need at least 4",
            bytes.len()
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "not an IDX file: magic number starts with {:#04x} {:#04x}, expected 0x00 0x00",
            bytes[0], bytes[1]
        ));
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "IDX value type {:#04x} is not 0x08 (unsigned byte)",
            bytes[2]
        ));
    }
    let got_rank = bytes[3] as usize;
    if got_rank != rank {
        return Err(format!(
            "IDX file has {got_rank} dimensions, expected {rank} (magic {:#010x})",
            u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(format!(
            "truncated IDX header: {} bytes, need {header}",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("IDX dimensions {dims:?} overflow"))?;
    let have = bytes.len() - header;
    if have != n {
        return Err(format!(
            "IDX dimensions {dims:?} promise {n} values but the file holds {have} ({})",
            if have < n {
                "truncated"
            } else {
                "trailing bytes"
            }
        ));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dims: &[u32], extra: isize) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        let n: u32 = dims.iter().product();
        v.extend((0..(n as isize + extra).max(0)).map(|i| i as u8));
        v
    }

    #[test]
    fn parses_a_good_file() {
        let i = parse_idx(&file(&[2, 3, 2], 0), 3).unwrap();
        assert_eq!(i.dims, vec![2, 3, 2]);
        assert_eq!(i.data.len(), 12);
    }

    #[test]
    fn rejects_every_kind_of_damage() {
        let e = |b: &[u8], r| parse_idx(b, r).unwrap_err();
        assert!(e(&file(&[2, 3, 2], -1), 3).contains("truncated"));
        assert!(e(&file(&[2, 3, 2], 1), 3).contains("trailing"));
        assert!(e(&file(&[2, 3], 0), 3).contains("2 dimensions, expected 3"));
        assert!(e(&[0, 0, 8], 1).contains("truncated IDX header"));
        assert!(e(&[0, 0, 8, 1, 0, 0], 1).contains("truncated IDX header"));
        assert!(e(&[0x1f, 0x8b, 8, 1], 1).contains("not an IDX file"));
        assert!(e(&[0, 0, 0x0d, 1, 0, 0, 0, 0], 1).contains("not 0x08"));
        let mut huge = vec![0, 0, 8, 3];
        for _ in 0..3 {
            huge.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        assert!(e(&huge, 3).contains("overflow") || e(&huge, 3).contains("promise"));
    }

    #[test]
    fn gzip_is_transparent_and_checked() {
        use std::io::Write;
        let raw = file(&[2, 3], 0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        let back = maybe_gunzip(gz.clone()).unwrap();
        assert_eq!(parse_idx(&back, 2).unwrap().dims, vec![2, 3]);
        // A truncated gzip stream is an error, not a panic.
        let e = maybe_gunzip(gz[..gz.len() - 6].to_vec()).unwrap_err();
        assert!(e.contains("corrupt gzip"), "{e}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = read_idx(Path::new("/nonexistent/kiln/train-images"), 3).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/kiln/train-images: "),
            "{e}"
        );
    }
}
