//! Loss and accuracy curves as PNG and SVG (plotters, feature `plot`).
//!
//! Text is drawn with the font embedded in kiln
//! (`core/assets/DejaVuSans-subset.ttf`, printable ASCII of DejaVu Sans), so
//! plotting needs no system fonts and no fontconfig; the PNG is encoded here
//! (8-bit RGB, zlib by `flate2`).

use super::History;
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

pub(crate) fn register_font() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "plot",
            "kiln internal error: the embedded font does not load",
        ))
    }
}

/// One chart: a title, the y axis's name, and named series of `(epoch, value)` points.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// Name of the y axis.
    pub y_label: String,
    /// Named curves.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn range(vals: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let m = (hi - lo) * pad;
    (lo - m, hi + m)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    panels: &[Panel],
    x_label: &str,
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, p) in areas.iter().zip(panels) {
        let xs = range(p.series.iter().flat_map(|s| s.1.iter().map(|q| q.0)), 0.02);
        let ys = range(p.series.iter().flat_map(|s| s.1.iter().map(|q| q.1)), 0.05);
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, (FAMILY, 22))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(p.y_label.as_str())
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(e)?;
        for (k, (name, pts)) in p.series.iter().enumerate() {
            let c = COLORS[k % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(e)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&q| Circle::new(q, 3, c.filled())))
                .map_err(e)?;
        }
        if !p.series.is_empty() {
            chart
                .configure_series_labels()
                .position(legend_corner(p, ys))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .label_font((FAMILY, 14))
                .draw()
                .map_err(e)?;
        }
    }
    root.present().map_err(e)
}

/// Upper right, unless the curves end in the upper half (accuracy): then lower right.
fn legend_corner(p: &Panel, ys: (f64, f64)) -> SeriesLabelPosition {
    let mid = (ys.0 + ys.1) / 2.0;
    let ends: Vec<f64> = p
        .series
        .iter()
        .filter_map(|s| s.1.last().map(|q| q.1))
        .collect();
    if !ends.is_empty() && ends.iter().all(|&v| v > mid) {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    }
}

/// Writes grey levels in `[0, 1]` (`width·height` values, row-major;
/// clamped, rounded to 8 bits) as a PNG file at `path`, named in the error.
pub fn write_grey_png(
    path: impl AsRef<std::path::Path>,
    width: usize,
    height: usize,
    pixels: &[f32],
) -> Result<()> {
    let path = path.as_ref();
    if pixels.len() != width * height {
        return Err(Error::LengthMismatch {
            what: format!("write_grey_png {}", path.display()),
            expected: width * height,
            shape: format!("{width}×{height} pixels"),
            got: pixels.len(),
        });
    }
    let rgb: Vec<u8> = pixels
        .iter()
        .flat_map(|v| [(v.clamp(0.0, 1.0) * 255.0).round() as u8; 3])
        .collect();
    std::fs::write(path, encode_png(width as u32, height as u32, &rgb)).map_err(|source| {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Lays `images` (each `h·w` grey levels, row-major) out in rows of `cols`,
/// each pixel drawn as a `scale × scale` square, separated and framed by
/// 2-pixel grey (0.5) borders: returns `(width, height, pixels)` for
/// [`write_grey_png`]. The last row may be short (grey cells).
pub fn image_grid(
    images: &[f32],
    (h, w): (usize, usize),
    cols: usize,
    scale: usize,
) -> Result<(usize, usize, Vec<f32>)> {
    const GAP: usize = 2;
    if h == 0
        || w == 0
        || cols == 0
        || scale == 0
        || images.is_empty()
        || !images.len().is_multiple_of(h * w)
    {
        return Err(Error::invalid(
            "image_grid",
            format!(
                "{} values are not a whole number of {h}×{w} images, or a size (columns {cols}, scale {scale}) is 0",
                images.len()
            ),
        ));
    }
    let n = images.len() / (h * w);
    let cols = cols.min(n);
    let (ch, cw) = (h * scale + GAP, w * scale + GAP);
    let (width, height) = (cols * cw + GAP, n.div_ceil(cols) * ch + GAP);
    let mut img = vec![0.5f32; width * height];
    for (i, src) in images.chunks_exact(h * w).enumerate() {
        let (top, left) = (GAP + (i / cols) * ch, GAP + (i % cols) * cw);
        for r in 0..h * scale {
            for c in 0..w * scale {
                img[(top + r) * width + left + c] = src[(r / scale) * w + c / scale];
            }
        }
    }
    Ok((width, height, img))
}

/// [`image_grid`] written as a PNG file at `path`.
pub fn write_image_grid(
    path: impl AsRef<std::path::Path>,
    images: &[f32],
    hw: (usize, usize),
    cols: usize,
    scale: usize,
) -> Result<()> {
    let (width, height, img) = image_grid(images, hw, cols, scale)?;
    write_grey_png(path, width, height, &img)
}

/// Encodes 8-bit RGB pixels (`w·h·3` bytes, row-major) as a PNG file's bytes.
pub fn encode_png(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let stride = w as usize * 3;
    let mut raw = Vec::with_capacity((stride + 1) * h as usize);
    for row in rgb.chunks(stride.max(1)).take(h as usize) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(&raw);
    let data = z.finish().unwrap_or_default();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter, no interlace
    for (ty, body) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &data[..]),
        (b"IEND", &[][..]),
    ] {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(ty);
        out.extend_from_slice(body);
        let mut crc = flate2::Crc::new();
        crc.update(ty);
        crc.update(body);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    out
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Draws `panels` side by side into `PREFIX.png` and `PREFIX.svg`
/// (`width` × `height` pixels); returns both paths.
pub fn plot_panels(
    panels: &[Panel],
    prefix: impl AsRef<Path>,
    width: u32,
    height: u32,
) -> Result<(PathBuf, PathBuf)> {
    plot_panels_x(panels, "epoch", prefix, width, height)
}

/// [`plot_panels`] with `x_label` under the x axis instead of "epoch"
/// (printable ASCII: the embedded font has no other glyphs).
pub fn plot_panels_x(
    panels: &[Panel],
    x_label: &str,
    prefix: impl AsRef<Path>,
    width: u32,
    height: u32,
) -> Result<(PathBuf, PathBuf)> {
    register_font()?;
    let prefix = prefix.as_ref();
    let (png, svg) = (with_ext(prefix, "png"), with_ext(prefix, "svg"));
    let fail = |msg: String| Error::invalid("plot", msg);
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    draw(
        BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area(),
        panels,
        x_label,
    )
    .map_err(fail)?;
    let mut text = String::new();
    draw(
        SVGBackend::with_string(&mut text, (width, height)).into_drawing_area(),
        panels,
        x_label,
    )
    .map_err(fail)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::write(&png, encode_png(width, height, &rgb)).map_err(io(&png))?;
    std::fs::write(&svg, text).map_err(io(&svg))?;
    Ok((png, svg))
}

/// The usual two charts from a [`History`]: loss (`train_loss`, `val_loss`,
/// `test_loss`) and accuracy (`train_acc`, `val_acc`, `test_acc`) per epoch,
/// written to `PREFIX.png` and `PREFIX.svg` (1000 × 420). Series absent from
/// the history are left out.
pub fn training_curves(h: &History, prefix: impl AsRef<Path>) -> Result<(PathBuf, PathBuf)> {
    let panel = |title: &str, y: &str, keys: &[(&str, &str)]| Panel {
        title: title.into(),
        y_label: y.into(),
        series: keys
            .iter()
            .map(|(k, name)| (name.to_string(), h.series(k)))
            .filter(|(_, s)| !s.is_empty())
            .collect(),
    };
    let panels = [
        panel(
            "loss",
            "cross-entropy",
            &[
                ("train_loss", "train"),
                ("val_loss", "validation"),
                ("test_loss", "test"),
            ],
        ),
        panel(
            "accuracy",
            "accuracy",
            &[
                ("train_acc", "train"),
                ("val_acc", "validation"),
                ("test_acc", "test"),
            ],
        ),
    ];
    plot_panels(&panels, prefix, 1000, 420)
}

/// A matrix drawn by [`plot_heatmaps`]: `values[row][col]` (≥ 0; the
/// darkest cell is the map's largest value), labels for its rows and columns.
#[derive(Clone, Debug)]
pub struct Heatmap {
    /// Title above the map.
    pub title: String,
    /// One label per row, drawn left of it.
    pub rows: Vec<String>,
    /// One label per column, drawn above it.
    pub cols: Vec<String>,
    /// The values, row by row.
    pub values: Vec<Vec<f64>>,
}

/// Draws `maps` one below the other into the PNG file `path`, each cell a
/// `cell`-pixel square shaded from white (0) to dark blue (the map's
/// largest value) — attention weights, confusion matrices.
pub fn plot_heatmaps(maps: &[Heatmap], path: impl AsRef<Path>, cell: u32) -> Result<()> {
    for m in maps {
        if m.values.len() != m.rows.len() || m.values.iter().any(|r| r.len() != m.cols.len()) {
            return Err(Error::invalid(
                "plot_heatmaps",
                format!(
                    "`{}` has {} row labels and {} column labels for {} rows of lengths {:?}",
                    m.title,
                    m.rows.len(),
                    m.cols.len(),
                    m.values.len(),
                    m.values.iter().map(Vec::len).collect::<Vec<_>>()
                ),
            ));
        }
    }
    register_font()?;
    let (left, top, gap) = (56u32, 50u32, 20u32);
    let width = maps
        .iter()
        .map(|m| left + m.cols.len() as u32 * cell + gap)
        .max()
        .unwrap_or(1)
        .max(200);
    let height = maps
        .iter()
        .map(|m| top + m.rows.len() as u32 * cell + gap)
        .sum::<u32>()
        .max(1);
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| Error::invalid("plot_heatmaps", e.to_string());
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        let centred = TextStyle::from((FAMILY, 14)).pos(Pos::new(HPos::Center, VPos::Center));
        let mut y0 = 0i32;
        for m in maps {
            root.draw(&Text::new(m.title.clone(), (8, y0 + 6), (FAMILY, 16)))
                .map_err(e)?;
            let top_of_cells = y0 + top as i32;
            let c = cell as i32;
            let max =
                m.values
                    .iter()
                    .flatten()
                    .fold(0.0f64, |a, &b| if b.is_finite() { a.max(b) } else { a });
            for (j, label) in m.cols.iter().enumerate() {
                let x = left as i32 + j as i32 * c + c / 2;
                root.draw(&Text::new(label.clone(), (x, top_of_cells - 10), &centred))
                    .map_err(e)?;
            }
            for (i, (label, row)) in m.rows.iter().zip(&m.values).enumerate() {
                let y = top_of_cells + i as i32 * c;
                root.draw(&Text::new(
                    label.clone(),
                    (left as i32 / 2, y + c / 2),
                    &centred,
                ))
                .map_err(e)?;
                for (j, &v) in row.iter().enumerate() {
                    let t = if max > 0.0 && v.is_finite() {
                        (v / max).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    let shade = |w: f64, d: f64| (w + (d - w) * t).round() as u8;
                    let color =
                        RGBColor(shade(255.0, 8.0), shade(255.0, 48.0), shade(255.0, 107.0));
                    let x = left as i32 + j as i32 * c;
                    root.draw(&Rectangle::new(
                        [(x, y), (x + c - 1, y + c - 1)],
                        color.filled(),
                    ))
                    .map_err(e)?;
                }
            }
            y0 += (top + m.rows.len() as u32 * cell + gap) as i32;
        }
        root.present().map_err(e)?;
    }
    let path = path.as_ref();
    std::fs::write(path, encode_png(width, height, &rgb)).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Record;

    #[test]
    fn grey_png_is_the_rgb_encoding_of_equal_channels() {
        let p = std::env::temp_dir().join(format!("kiln-grey-{}.png", std::process::id()));
        write_grey_png(&p, 2, 1, &[0.0, 2.0]).unwrap();
        let want = encode_png(2, 1, &[0, 0, 0, 255, 255, 255]);
        assert_eq!(std::fs::read(&p).unwrap(), want, "clamped to [0, 1]");
        let e = write_grey_png(&p, 2, 2, &[0.5]).unwrap_err().to_string();
        assert!(e.contains("expected 4 values (2×2 pixels), got 1"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn image_grid_places_each_image_in_its_cell() {
        // Three 1×2 images in rows of 2, scale 1: cells 3 wide, 3 tall.
        let (w, h, g) = image_grid(&[0.0, 1.0, 0.2, 0.3, 0.9, 0.8], (1, 2), 2, 1).unwrap();
        assert_eq!((w, h), (2 * 4 + 2, 2 * 3 + 2));
        let at = |r: usize, c: usize| g[r * w + c];
        assert_eq!((at(2, 2), at(2, 3)), (0.0, 1.0));
        assert_eq!((at(2, 6), at(2, 7)), (0.2, 0.3));
        assert_eq!((at(5, 2), at(5, 3)), (0.9, 0.8));
        assert_eq!((at(0, 0), at(5, 6), at(3, 2)), (0.5, 0.5, 0.5));
        // Scale 2: each pixel a 2×2 square.
        let (w2, _, g2) = image_grid(&[0.0, 1.0], (1, 2), 1, 2).unwrap();
        assert_eq!(w2, 4 + 2 + 2);
        assert_eq!(&g2[2 * w2 + 2..2 * w2 + 6], &[0.0, 0.0, 1.0, 1.0]);
        assert_eq!(&g2[3 * w2 + 2..3 * w2 + 6], &[0.0, 0.0, 1.0, 1.0]);
        let e = image_grid(&[0.0; 5], (1, 2), 2, 1).unwrap_err().to_string();
        assert!(
            e.contains("5 values are not a whole number of 1×2 images"),
            "{e}"
        );
    }

    #[test]
    fn png_encoding_by_hand() {
        // A 1×1 red image: signature, IHDR (13 bytes), IDAT, IEND with its known CRC.
        let png = encode_png(1, 1, &[255, 0, 0]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[8..16], b"\0\0\0\x0dIHDR");
        assert_eq!(&png[16..29], &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
        assert_eq!(&png[png.len() - 12..], b"\0\0\0\0IEND\xae\x42\x60\x82");
        // The pixel data decompresses to one filter byte and the pixel.
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut raw = Vec::new();
        use std::io::Read;
        flate2::read::ZlibDecoder::new(&png[41..41 + idat_len])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw, [0, 255, 0, 0]);
    }

    #[test]
    fn curves_are_written() {
        let mut h = History::default();
        for e in 1..=5u64 {
            let f = e as f64;
            h.push(
                Record::new(e)
                    .with("train_loss", 1.0 / f)
                    .with("test_loss", 1.2 / f)
                    .with("train_acc", 1.0 - 0.1 / f)
                    .with("test_acc", 0.95 - 0.1 / f),
            );
        }
        let dir = std::env::temp_dir().join(format!("kiln-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (png, svg) = training_curves(&h, dir.join("run.v1")).unwrap();
        assert!(png.ends_with("run.v1.png") && svg.ends_with("run.v1.svg"));
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("\naccuracy\n") && text.contains("\nepoch\n"),
            "{}",
            &text[..200]
        );
        // An empty history still gives (empty) charts, not an error.
        training_curves(&History::default(), dir.join("empty")).unwrap();
    }

    #[test]
    fn heatmaps_are_written_and_checked() {
        let dir = std::env::temp_dir().join(format!("kiln-heat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let m = Heatmap {
            title: "weights".into(),
            rows: vec!["a".into(), "b".into()],
            cols: vec!["x".into(), "y".into(), "z".into()],
            values: vec![vec![0.0, 0.5, 1.0], vec![1.0, 0.0, 0.0]],
        };
        let path = dir.join("heat.png");
        plot_heatmaps(&[m.clone(), m.clone()], &path, 20).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // Width: 56 + 3·20 + 20 → at least 200; height: 2·(50 + 2·20 + 20).
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 200);
        assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 220);
        let bad = Heatmap {
            values: vec![vec![0.0, 0.5], vec![1.0, 0.0, 0.0]],
            ..m
        };
        let e = plot_heatmaps(&[bad], &path, 20).unwrap_err().to_string();
        assert!(e.contains("lengths [2, 3]"), "{e}");
    }
}
