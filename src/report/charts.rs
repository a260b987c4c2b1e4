//! SVG charts of the report, drawn with plotters into strings: grouped bar
//! charts (per-layer density and bits, size per stage, accuracy) and weight
//! histograms with the shared values of a quantized layer marked.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;

use super::ReportError;

/// Colours of the series of a bar chart, in order.
pub const PALETTE: [RGBColor; 4] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
];

/// Colour of the centroid markers on histograms.
const CENTROID: RGBColor = RGBColor(0xc4, 0x1e, 0x3a);

/// One named row of values of a bar chart, one value per category.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// One value per category.
    pub values: Vec<f64>,
}

/// A grouped bar chart: one group of bars per category, one bar per series.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Caption above the chart.
    pub title: String,
    /// Label of the value axis.
    pub y_label: String,
    /// Category names under the groups.
    pub categories: Vec<String>,
    /// The bars; at most [`PALETTE`]`.len()` series.
    pub series: Vec<Series>,
    /// Rotate category names (for long lists such as layer names).
    pub rotate_labels: bool,
    /// Size in pixels.
    pub size: (u32, u32),
}

/// Draw `chart` as an SVG document.
pub fn bar_chart_svg(chart: &BarChart) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let failed = |e: &dyn std::fmt::Display| ReportError::Chart {
            what: format!("chart {:?}", chart.title),
            message: e.to_string(),
        };
        let root = SVGBackend::with_string(&mut svg, chart.size).into_drawing_area();
        draw_bars(&root, chart).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg)
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &BarChart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let groups = chart.categories.len().max(1) as f64;
    let top = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let label_room = if chart.rotate_labels { 110 } else { 30 };
    // Room above the bars for the legend of multi-series charts.
    let headroom = if chart.series.len() > 1 { 1.3 } else { 1.0 };
    let y_top = nice_top(top * headroom);
    let decimals = if y_top >= 20.0 { 0 } else { 1 };
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(label_room)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..groups - 0.5, 0.0..y_top)?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|v| format!("{v:.decimals$}"))
        .y_desc(chart.y_label.as_str())
        .draw()?;
    let slot = 0.8 / chart.series.len().max(1) as f64;
    for (j, series) in chart.series.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let left = -0.4 + j as f64 * slot;
        ctx.draw_series(series.values.iter().enumerate().map(|(i, &v)| {
            let x = i as f64 + left;
            Rectangle::new([(x, 0.0), (x + slot, v.max(0.0))], color.filled())
        }))?
        .label(series.name.as_str())
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    if chart.series.len() > 1 {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    let font = ("sans-serif", 12).into_font();
    let style = if chart.rotate_labels {
        font.transform(FontTransform::Rotate90)
            .into_text_style(root)
    } else {
        font.into_text_style(root).pos(text_anchor_centre())
    };
    for (i, name) in chart.categories.iter().enumerate() {
        let (x, y) = ctx.backend_coord(&(i as f64, 0.0));
        let at = if chart.rotate_labels {
            (x + 5, y + 6)
        } else {
            (x, y + 8)
        };
        root.draw(&Text::new(name.as_str(), at, style.clone()))?;
    }
    Ok(())
}

fn text_anchor_centre() -> plotters::style::text_anchor::Pos {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    Pos::new(HPos::Center, VPos::Top)
}

/// A histogram of `weights` over `bins` equal bins, with a vertical line at
/// each of `centroids`, as an SVG document.
pub fn histogram_svg(
    title: &str,
    weights: &[f32],
    centroids: &[f32],
    bins: usize,
    size: (u32, u32),
) -> Result<String, ReportError> {
    let (lo, hi) = value_range(weights.iter().chain(centroids));
    let counts = bin_counts(weights, lo, hi, bins);
    let mut svg = String::new();
    {
        let failed = |e: &dyn std::fmt::Display| ReportError::Chart {
            what: format!("histogram {title:?}"),
            message: e.to_string(),
        };
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_histogram(&root, title, &counts, centroids, (lo, hi)).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg)
}

fn draw_histogram<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    counts: &[usize],
    centroids: &[f32],
    (lo, hi): (f64, f64),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let top = nice_top(counts.iter().copied().max().unwrap_or(0) as f64);
    let mut ctx = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..hi, 0.0..top)?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(5)
        .y_labels(4)
        .x_label_formatter(&|v| format!("{v:.2}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let width = (hi - lo) / counts.len().max(1) as f64;
    ctx.draw_series(counts.iter().enumerate().map(|(i, &c)| {
        let x = lo + i as f64 * width;
        Rectangle::new([(x, 0.0), (x + width, c as f64)], PALETTE[0].filled())
    }))?;
    for x in centroids
        .iter()
        .map(|&c| f64::from(c))
        .filter(|x| x.is_finite())
    {
        ctx.draw_series(LineSeries::new(
            [(x, 0.0), (x, top)],
            CENTROID.stroke_width(1),
        ))?;
    }
    Ok(())
}

/// Count of `weights` in each of `bins` equal bins over `lo..=hi`.
pub fn bin_counts(weights: &[f32], lo: f64, hi: f64, bins: usize) -> Vec<usize> {
    let mut counts = vec![0; bins.max(1)];
    let width = (hi - lo) / counts.len() as f64;
    for &w in weights {
        let w = f64::from(w);
        if !(lo..=hi).contains(&w) || width <= 0.0 {
            continue;
        }
        let bin = (((w - lo) / width) as usize).min(counts.len() - 1);
        counts[bin] += 1;
    }
    counts
}

/// The finite range of `values`, widened to a nonempty interval.
fn value_range<'a>(values: impl Iterator<Item = &'a f32>) -> (f64, f64) {
    let (lo, hi) = values
        .map(|&v| f64::from(v))
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (-1.0, 1.0)
    } else if lo == hi {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    }
}

/// An axis top a little above `max` (and positive).
fn nice_top(max: f64) -> f64 {
    if max > 0.0 {
        max * 1.08
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_split_the_range_evenly_and_drop_values_outside_it() {
        let weights = [0.0, 0.1, 0.5, 1.0, 2.0, f32::NAN];
        assert_eq!(bin_counts(&weights, 0.0, 1.0, 2), vec![2, 2]);
    }

    #[test]
    fn histogram_of_odd_values_is_still_an_svg() {
        let svg = histogram_svg("x", &[f32::NAN, 1.0], &[f32::INFINITY, 1.0], 4, (200, 100))
            .expect("drawn");
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
