//! Word vectors and their evaluation: cosine nearest neighbours, the
//! word2vec text format, and Spearman's rank correlation with human
//! similarity judgements (WordSim-353, SimLex-999; `scripts/fetch-word-similarity`).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Words and one vector each (`dim` values, row-major), in vocabulary order.
#[derive(Clone, Debug)]
pub struct WordVectors {
    /// The words.
    pub words: Vec<String>,
    /// Values per vector.
    pub dim: usize,
    /// `words.len() × dim` values.
    pub data: Vec<f32>,
    /// Each vector divided by its norm (zero vectors stay zero).
    unit: Vec<f32>,
    index: std::collections::HashMap<String, usize>,
}

impl WordVectors {
    /// Vectors for `words` (`data` is `words.len() × dim`).
    pub fn new(words: Vec<String>, dim: usize, data: Vec<f32>) -> Result<WordVectors> {
        if data.len() != words.len() * dim {
            return Err(Error::invalid(
                "WordVectors::new",
                format!("{} values for {} words of {dim}", data.len(), words.len()),
            ));
        }
        let mut unit = data.clone();
        for row in unit.chunks_exact_mut(dim.max(1)) {
            let n = row.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            if n > 0.0 {
                row.iter_mut().for_each(|x| *x = (*x as f64 / n) as f32);
            }
        }
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        Ok(WordVectors {
            words,
            dim,
            data,
            unit,
            index,
        })
    }

    /// The index of `word`.
    pub fn get(&self, word: &str) -> Option<usize> {
        self.index.get(word).copied()
    }

    fn unit(&self, i: usize) -> &[f32] {
        &self.unit[i * self.dim..][..self.dim]
    }

    /// `cos(a, b) = a·b / (|a| |b|)`, or `None` when a word is unknown.
    pub fn similarity(&self, a: &str, b: &str) -> Option<f64> {
        let (i, j) = (self.get(a)?, self.get(b)?);
        Some(
            self.unit(i)
                .iter()
                .zip(self.unit(j))
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum(),
        )
    }

    /// The `k` words nearest to `word` by cosine, the word itself excluded,
    /// nearest first (gensim's `most_similar`).
    pub fn nearest(&self, word: &str, k: usize) -> Option<Vec<(String, f64)>> {
        let i = self.get(word)?;
        let q = self.unit(i);
        let mut all: Vec<(usize, f64)> = (0..self.words.len())
            .filter(|&j| j != i)
            .map(|j| {
                let c = q
                    .iter()
                    .zip(self.unit(j))
                    .map(|(x, y)| *x as f64 * *y as f64)
                    .sum();
                (j, c)
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Some(
            all.into_iter()
                .take(k)
                .map(|(j, c)| (self.words[j].clone(), c))
                .collect(),
        )
    }

    /// Writes the word2vec text format: a header line `count dim`, then one
    /// line `word v1 v2 … v_dim` per word (values in Rust's shortest
    /// round-trip form), as gensim's `KeyedVectors.load_word2vec_format(path)`
    /// reads it.
    pub fn save_word2vec_text(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |e: std::io::Error| Error::Io {
            path: path.to_path_buf(),
            source: e,
        };
        if let Some(w) = self
            .words
            .iter()
            .find(|w| w.is_empty() || w.contains(char::is_whitespace))
        {
            return Err(Error::invalid(
                "save_word2vec_text",
                format!("the word {w:?} is empty or holds whitespace"),
            ));
        }
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        writeln!(f, "{} {}", self.words.len(), self.dim).map_err(io)?;
        for (w, row) in self
            .words
            .iter()
            .zip(self.data.chunks_exact(self.dim.max(1)))
        {
            write!(f, "{w}").map_err(io)?;
            for v in row {
                write!(f, " {v}").map_err(io)?;
            }
            writeln!(f).map_err(io)?;
        }
        f.flush().map_err(io)
    }

    /// Reads the word2vec text format written by
    /// [`WordVectors::save_word2vec_text`] (or by gensim).
    pub fn load_word2vec_text(path: impl AsRef<Path>) -> Result<WordVectors> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let bad = |line: usize, msg: String| Error::Format {
            path: path.to_path_buf(),
            msg: format!("line {line}: {msg}"),
        };
        let mut lines = text.lines();
        let head: Vec<usize> = lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(|x| {
                x.parse()
                    .map_err(|_| bad(1, format!("{x:?} is not a count")))
            })
            .collect::<Result<_>>()?;
        let [n, dim] = head[..] else {
            return Err(bad(1, "the header is not `count dim`".into()));
        };
        let (mut words, mut data) = (Vec::with_capacity(n), Vec::with_capacity(n * dim));
        for (i, line) in lines.enumerate() {
            let mut it = line.split(' ');
            words.push(it.next().unwrap_or("").to_string());
            for x in it.filter(|x| !x.is_empty()) {
                data.push(
                    x.parse::<f32>()
                        .map_err(|_| bad(i + 2, format!("{x:?} is not a number")))?,
                );
            }
            if data.len() != words.len() * dim {
                return Err(bad(i + 2, format!("not {dim} values")));
            }
        }
        if words.len() != n {
            return Err(bad(
                1,
                format!("{n} words announced, {} present", words.len()),
            ));
        }
        WordVectors::new(words, dim, data)
    }
}

/// Ranks of `x` from 1, ties given the average of the ranks they span
/// (`[10, 20, 20, 30]` → `[1, 2.5, 2.5, 4]`).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        // positions i..=j (0-based) hold ranks i+1..=j+1: their mean
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            ranks[o] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's ρ: Pearson's correlation of the average ranks (which is what
/// `scipy.stats.spearmanr` computes when there are ties). `None` for fewer
/// than two pairs or a constant side.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "spearman of unequal lengths");
    if x.len() < 2 {
        return None;
    }
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// One judged pair of a similarity set.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// First word (lower-cased).
    pub a: String,
    /// Second word (lower-cased).
    pub b: String,
    /// The human score.
    pub score: f64,
}

/// Reads a similarity set as gensim ships them: `#` comment lines, then
/// `word1<TAB>word2<TAB>score` (WordSim-353's `wordsim353.tsv`, SimLex-999's
/// `simlex999.txt`). Words are lower-cased, as the tokenizer does.
pub fn read_pairs(path: impl AsRef<Path>) -> Result<Vec<Pair>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingData {
            what: "word-similarity set",
            path: path.to_path_buf(),
            hint: "run `scripts/fetch-word-similarity` (it takes WordSim-353 and SimLex-999 from the PyPI wheel of gensim into data/wordsim/)",
        },
        _ => Error::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let score = f.get(2).and_then(|s| s.trim().parse::<f64>().ok());
        let (Some(score), true) = (score, f.len() >= 3) else {
            return Err(Error::Format {
                path: path.to_path_buf(),
                msg: format!("line {}: not `word1<TAB>word2<TAB>score`: {line:?}", i + 1),
            });
        };
        pairs.push(Pair {
            a: f[0].trim().to_lowercase(),
            b: f[1].trim().to_lowercase(),
            score,
        });
    }
    Ok(pairs)
}

/// The outcome of scoring vectors on a similarity set.
#[derive(Clone, Debug, PartialEq)]
pub struct SimilarityScore {
    /// Spearman's ρ between the human scores and the cosines, over the
    /// pairs whose two words both have a vector (`None` if fewer than 2).
    pub spearman: Option<f64>,
    /// Pairs scored.
    pub used: usize,
    /// Pairs in the set.
    pub total: usize,
}

/// Scores `vectors` on `pairs`: only pairs whose words are both in the
/// vocabulary count (the coverage is `used / total`).
pub fn evaluate(vectors: &WordVectors, pairs: &[Pair]) -> SimilarityScore {
    let (mut human, mut model) = (Vec::new(), Vec::new());
    for p in pairs {
        if let Some(c) = vectors.similarity(&p.a, &p.b) {
            human.push(p.score);
            model.push(c);
        }
    }
    SimilarityScore {
        spearman: spearman(&human, &model),
        used: human.len(),
        total: pairs.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_with_ties_matches_a_hand_worked_value() {
        // x = [1, 2, 2, 3, 5], y = [2, 1, 4, 4, 6]
        // ranks x: [1, 2.5, 2.5, 4, 5];  ranks y: [2, 1, 3.5, 3.5, 5]; means 3, 3
        // deviations x: [-2, -0.5, -0.5, 1, 2];  y: [-1, -2, 0.5, 0.5, 2]
        // Σxy = 2 + 1 − 0.25 + 0.5 + 4 = 7.25; Σx² = 4 + .25 + .25 + 1 + 4 = 9.5;
        // Σy² = 1 + 4 + .25 + .25 + 4 = 9.5  →  ρ = 7.25 / 9.5 = 0.763157894…
        let x = [1.0, 2.0, 2.0, 3.0, 5.0];
        let y = [2.0, 1.0, 4.0, 4.0, 6.0];
        assert_eq!(average_ranks(&x), vec![1.0, 2.5, 2.5, 4.0, 5.0]);
        assert_eq!(average_ranks(&y), vec![2.0, 1.0, 3.5, 3.5, 5.0]);
        let rho = spearman(&x, &y).unwrap();
        assert!((rho - 7.25 / 9.5).abs() < 1e-15, "{rho}");
        // scipy.stats.spearmanr([1,2,2,3,5],[2,1,4,4,6]) = 0.7631578947368421
        assert!((rho - 0.763_157_894_736_842_1).abs() < 1e-15);
        // monotone: 1; reversed: −1; constant: undefined
        assert_eq!(spearman(&[1.0, 5.0, 9.0], &[0.1, 0.2, 7.0]), Some(1.0));
        assert_eq!(spearman(&[1.0, 5.0, 9.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&[1.0, 1.0], &[3.0, 2.0]), None);
    }

    #[test]
    fn vectors_round_trip_the_word2vec_text_format_and_find_neighbours() {
        let v = WordVectors::new(
            vec!["king".into(), "queen".into(), "sword".into()],
            2,
            vec![1.0, 0.1, 0.9, 0.2, -0.5, 1.5e-7],
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("kiln-w2v-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("v.txt");
        v.save_word2vec_text(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("3 2\nking 1 0.1\nqueen 0.9 0.2\nsword -0.5 0.00000015\n"),
            "{text}"
        );
        let back = WordVectors::load_word2vec_text(&p).unwrap();
        assert_eq!(back.words, v.words);
        assert_eq!(back.data, v.data);
        let nn = v.nearest("king", 2).unwrap();
        assert_eq!(nn[0].0, "queen");
        assert!(v.similarity("king", "nobody").is_none());
        let pairs = vec![
            Pair {
                a: "king".into(),
                b: "queen".into(),
                score: 9.0,
            },
            Pair {
                a: "king".into(),
                b: "sword".into(),
                score: 2.0,
            },
            Pair {
                a: "queen".into(),
                b: "sword".into(),
                score: 1.0,
            },
            Pair {
                a: "king".into(),
                b: "france".into(),
                score: 5.0,
            },
        ];
        let s = evaluate(&v, &pairs);
        assert_eq!((s.used, s.total), (3, 4));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
