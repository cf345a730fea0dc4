//! Class-coloured scatter plots of 2-D maps as PNG (plotters, feature
//! `plot`; the same embedded font and PNG encoder as [`crate::train::plot`]).

use crate::error::{Error, Result};
use crate::train::plot::{encode_png, register_font, FAMILY};
use plotters::prelude::*;
use std::path::Path;

/// The ten colours of matplotlib's `tab10`, one per class (cycled beyond ten).
pub const TAB10: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Draws `points` as dots coloured by `labels` (indices into `classes`,
/// whose names make the legend) under `title` into the PNG file `path`,
/// `size × size` pixels.
pub fn plot_scatter(
    points: &[[f64; 2]],
    labels: &[usize],
    classes: &[String],
    title: &str,
    path: impl AsRef<Path>,
    size: u32,
) -> Result<()> {
    let path = path.as_ref();
    if points.len() != labels.len() {
        return Err(Error::invalid(
            "plot_scatter",
            format!("{} points but {} labels", points.len(), labels.len()),
        ));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes.len()) {
        return Err(Error::invalid(
            "plot_scatter",
            format!(
                "label {bad} has no name among the {} classes",
                classes.len()
            ),
        ));
    }
    if size < 100 {
        return Err(Error::invalid(
            "plot_scatter",
            format!("{size} pixels is too small (at least 100)"),
        ));
    }
    register_font()?;
    let range = |k: usize| {
        let (lo, hi) = points
            .iter()
            .map(|p| p[k])
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            (-1.0, 1.0)
        } else {
            let pad = ((hi - lo) * 0.04).max(1e-9);
            (lo - pad, hi + pad)
        }
    };
    let ((x0, x1), (y0, y1)) = (range(0), range(1));
    let mut rgb = vec![255u8; size as usize * size as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (size, size)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| Error::invalid("plot_scatter", e.to_string());
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .label_style((FAMILY, 12))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(e)?;
        for (c, name) in classes.iter().enumerate() {
            let (r, g, b) = TAB10[c % TAB10.len()];
            let color = RGBColor(r, g, b);
            chart
                .draw_series(
                    points
                        .iter()
                        .zip(labels)
                        .filter(|(_, &l)| l == c)
                        .map(|(p, _)| Circle::new((p[0], p[1]), 2, color.mix(0.7).filled())),
                )
                .map_err(e)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font((FAMILY, 13))
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    std::fs::write(path, encode_png(size, size, &rgb)).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_is_written_and_checked() {
        let dir = std::env::temp_dir().join(format!("kiln-scatter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.png");
        let pts = [[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]];
        let names: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        plot_scatter(&pts, &[0, 1, 1], &names, "map", &path, 300).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 300);
        let e = plot_scatter(&pts, &[0, 1], &names, "m", &path, 300)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 points but 2 labels"), "{e}");
        let e = plot_scatter(&pts, &[0, 1, 2], &names, "m", &path, 300)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 2 has no name"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
