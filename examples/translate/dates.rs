//! The translation task's data: every date from 1950-01-01 to 2049-12-31
//! written in 14 human formats, each unambiguous by construction (a format
//! with `dd.mm` is always day-first, one with `mm/dd` always month-first,
//! two-digit years always mean 1950–2049), and its ISO form `yyyy-mm-dd`;
//! the seeded split of the dates into a training set and a test set; the
//! character vocabularies of both sides.

use kiln::Rng;
use rand::seq::SliceRandom as _;

/// Source characters (after padding to this many).
pub const SRC_LEN: usize = 52;
/// Target positions: `BOS` + the 10 ISO characters in, the 10 + `EOS` out.
pub const TGT_LEN: usize = 11;
/// The source alphabet; a character's id is its index + 1 (0 is padding).
pub const SRC_CHARS: &str = " ,-./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Source vocabulary: padding and the 67 characters.
pub const SRC_VOCAB: usize = 68;
/// Target ids: padding, start, end, then `-` and the digits.
pub const PAD: u32 = 0;
/// The decoder's start token.
pub const BOS: u32 = 1;
/// The end of a target.
pub const EOS: u32 = 2;
/// The target alphabet after the three special ids.
pub const TGT_CHARS: &str = "-0123456789";
/// Target vocabulary.
pub const TGT_VOCAB: usize = 14;

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    /// 1950–2049.
    pub y: u32,
    /// 1–12.
    pub m: u32,
    /// 1–31.
    pub d: u32,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u32,
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Every date from 1950-01-01 (a Sunday) to 2049-12-31, in order: 36,525.
pub fn all_dates() -> Vec<Date> {
    let mut out = Vec::with_capacity(36_525);
    let mut weekday = 6;
    for y in 1950..2050 {
        for m in 1..=12 {
            for d in 1..=days_in_month(y, m) {
                out.push(Date { y, m, d, weekday });
                weekday = (weekday + 1) % 7;
            }
        }
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const ORDINALS: [&str; 20] = [
    "zeroth",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// `n < 100` in words: "seven", "forty-two".
fn cardinal(n: u32) -> String {
    match (n / 10, n % 10) {
        _ if n < 20 => ONES[n as usize].to_string(),
        (t, 0) => TENS[t as usize].to_string(),
        (t, u) => format!("{}-{}", TENS[t as usize], ONES[u as usize]),
    }
}

/// `1 ≤ n ≤ 31` as an ordinal in words: "third", "twentieth", "thirty-first".
fn ordinal_words(n: u32) -> String {
    match (n / 10, n % 10) {
        _ if n < 20 => ORDINALS[n as usize].to_string(),
        (t, 0) => format!("{}ieth", &TENS[t as usize][..TENS[t as usize].len() - 1]),
        (t, u) => format!("{}-{}", TENS[t as usize], ORDINALS[u as usize]),
    }
}

/// "1st", "2nd", "3rd", "11th", "22nd".
fn ordinal_digits(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A year of 1950–2049 in words: "nineteen fifty-one", "two thousand",
/// "two thousand eleven".
fn year_words(y: u32) -> String {
    match y {
        1950..=1999 => format!("nineteen {}", cardinal(y - 1900)),
        2000 => "two thousand".into(),
        _ => format!("two thousand {}", cardinal(y - 2000)),
    }
}

/// The formats, by name (`FORMATS[i]` is what [`render`]`(i, …)` writes).
pub const FORMATS: [&str; 14] = [
    "3rd of March 2011",
    "Mar 3, 11",
    "03.03.2011",
    "03/03/11",
    "March third, two thousand eleven",
    "Thursday, 3 March 2011",
    "March 3, 2011",
    "20110303",
    "3-Mar-11",
    "3 March two thousand eleven",
    "2011/03/03",
    "mar 3 2011",
    "3.3.11",
    "the third of March, 2011",
];

/// `date` in format `f` (see [`FORMATS`]).
pub fn render(f: usize, t: &Date) -> String {
    let month = MONTHS[t.m as usize - 1];
    let mon = &month[..3];
    let (y, m, d) = (t.y, t.m, t.d);
    let yy = y % 100;
    match f {
        0 => format!("{} of {month} {y}", ordinal_digits(d)),
        1 => format!("{mon} {d}, {yy:02}"),
        2 => format!("{d:02}.{m:02}.{y}"),
        3 => format!("{m:02}/{d:02}/{yy:02}"),
        4 => format!("{month} {}, {}", ordinal_words(d), year_words(y)),
        5 => format!("{}, {d} {month} {y}", WEEKDAYS[t.weekday as usize]),
        6 => format!("{month} {d}, {y}"),
        7 => format!("{y}{m:02}{d:02}"),
        8 => format!("{d}-{mon}-{yy:02}"),
        9 => format!("{d} {month} {}", year_words(y)),
        10 => format!("{y}/{m:02}/{d:02}"),
        11 => format!("{} {d} {y}", mon.to_lowercase()),
        12 => format!("{d}.{m}.{yy:02}"),
        _ => format!("the {} of {month}, {y}", ordinal_words(d)),
    }
}

/// The ISO form, `yyyy-mm-dd`.
pub fn iso(t: &Date) -> String {
    format!("{:04}-{:02}-{:02}", t.y, t.m, t.d)
}

/// Source ids of `text`, padded with 0 to [`SRC_LEN`]; an error for a
/// character outside [`SRC_CHARS`] or a text longer than `SRC_LEN`.
pub fn encode_source(text: &str, out: &mut Vec<u32>) -> kiln::Result<()> {
    let start = out.len();
    for c in text.chars() {
        let i = SRC_CHARS.find(c).ok_or_else(|| {
            kiln::Error::invalid(
                "translate",
                format!("{c:?} in {text:?} is not in the source alphabet"),
            )
        })?;
        out.push(i as u32 + 1);
    }
    if out.len() - start > SRC_LEN {
        return Err(kiln::Error::invalid(
            "translate",
            format!("{text:?} is longer than {SRC_LEN} characters"),
        ));
    }
    out.resize(start + SRC_LEN, 0);
    Ok(())
}

/// The target ids of an ISO string (no `BOS`/`EOS`).
pub fn encode_target(iso: &str) -> Vec<u32> {
    iso.chars()
        .map(|c| TGT_CHARS.find(c).map_or(PAD, |i| i as u32 + 3))
        .collect()
}

/// The text of target ids, up to `EOS`; other special ids as `?`.
pub fn decode_target(ids: &[u32]) -> String {
    ids.iter()
        .take_while(|&&t| t != EOS)
        .map(|&t| match t {
            3..=13 => TGT_CHARS.as_bytes()[t as usize - 3] as char,
            _ => '?',
        })
        .collect()
}

/// Where the training and test examples come from.
pub struct Split {
    /// Dates that training draws from.
    pub train: Vec<Date>,
    /// `(source text, date)`: each held-out date in one format, the formats
    /// taken in turn so that every format is tested equally often.
    pub test: Vec<(String, Date)>,
}

/// Shuffles every date with the seeded generator and holds out the first
/// `test_dates` as the test set (split by date, not by string: no test date
/// appears in training in any format).
pub fn split(rng: &mut Rng, test_dates: usize) -> Split {
    let mut dates = all_dates();
    dates.shuffle(rng);
    let test_dates = test_dates.min(dates.len() - 1);
    let train = dates.split_off(test_dates);
    let test = dates
        .iter()
        .enumerate()
        .map(|(i, t)| (render(i % FORMATS.len(), t), *t))
        .collect();
    Split { train, test }
}
