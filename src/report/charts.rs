//! SVG charts of the report, drawn with plotters into strings: grouped bar
//! charts (per-layer density and bits, size per stage, accuracy) and weight
//! histograms with the shared values of a quantized layer marked.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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
    /// Vertical bars side by side, or one row of horizontal bars per
    /// category.
    pub layout: BarLayout,
    /// Size in pixels; with [`BarLayout::Rows`] the height is only a
    /// minimum, see [`BarChart::pixel_size`].
    pub size: (u32, u32),
}

/// How a [`BarChart`] lays out its categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarLayout {
    /// Vertical bars, category names centred under them: for a few short
    /// names.
    Columns,
    /// One row per category, its name left of horizontal bars, the chart
    /// as tall as the rows need: readable for any number of categories
    /// (ResNet-50's 54 layers, VGG-16's long names).
    Rows,
}

/// Pixels per series in a row of a [`BarLayout::Rows`] chart, and the
/// least height of a row (so a one-series row still fits its 12-pixel
/// name).
const BAR_PIXELS: u32 = 8;
const MIN_ROW_PIXELS: u32 = 16;

/// Pixels above and below the rows: caption, axis.
const ROWS_FRAME_PIXELS: u32 = 110;

/// Height of the caption strip of a [`BarLayout::Rows`] chart, and of the
/// legend line under it (drawn only for several series): above the bars,
/// so a legend never hides a row, however many rows there are.
const ROWS_CAPTION_PIXELS: u32 = 34;
const ROWS_LEGEND_PIXELS: u32 = 22;

/// Approximate width of one character of the 12-pixel label font.
const LABEL_CHAR_PIXELS: u32 = 7;

impl BarChart {
    /// The drawn size: `size`, made tall enough for one readable row per
    /// category with [`BarLayout::Rows`].
    pub fn pixel_size(&self) -> (u32, u32) {
        match self.layout {
            BarLayout::Columns => self.size,
            BarLayout::Rows => {
                let rows = self.categories.len().max(1) as u32;
                let needed = ROWS_FRAME_PIXELS + self.legend_pixels() + rows * self.row_pixels();
                (self.size.0, self.size.1.max(needed))
            }
        }
    }

    /// Height of the legend line of a [`BarLayout::Rows`] chart: none for
    /// a single series.
    fn legend_pixels(&self) -> u32 {
        if self.series.len() > 1 {
            ROWS_LEGEND_PIXELS
        } else {
            0
        }
    }

    /// Height of one category's row with [`BarLayout::Rows`].
    fn row_pixels(&self) -> u32 {
        (self.series.len().max(1) as u32 * BAR_PIXELS + 6).max(MIN_ROW_PIXELS)
    }
}

/// Draw `chart` as an SVG document.
pub fn bar_chart_svg(chart: &BarChart) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let failed = |e: &dyn std::fmt::Display| ReportError::Chart {
            what: format!("chart {:?}", chart.title),
            message: e.to_string(),
        };
        let root = SVGBackend::with_string(&mut svg, chart.pixel_size()).into_drawing_area();
        match chart.layout {
            BarLayout::Columns => draw_columns(&root, chart),
            BarLayout::Rows => draw_rows(&root, chart),
        }
        .map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg)
}

fn draw_columns<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &BarChart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let groups = chart.categories.len().max(1) as f64;
    let y_top = value_top(chart);
    let decimals = if y_top >= 20.0 { 0 } else { 1 };
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
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
    draw_legend(&mut ctx, chart)?;
    let style = ("sans-serif", 12)
        .into_font()
        .into_text_style(root)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, name) in chart.categories.iter().enumerate() {
        let (x, y) = ctx.backend_coord(&(i as f64, 0.0));
        root.draw(&Text::new(name.as_str(), (x, y + 8), style.clone()))?;
    }
    Ok(())
}

/// Horizontal bars, one row per category from the top, the value axis
/// at the bottom and the legend on a line of its own below the caption.
fn draw_rows<DB: DrawingBackend>(
    whole: &DrawingArea<DB, Shift>,
    chart: &BarChart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    whole.fill(&WHITE)?;
    let (head, root) = whole.split_vertically(ROWS_CAPTION_PIXELS + chart.legend_pixels());
    let root = &root;
    let rows = chart.categories.len().max(1);
    let x_top = value_top(chart);
    let decimals = if x_top >= 20.0 { 0 } else { 1 };
    let longest = chart
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let name_room = (longest * LABEL_CHAR_PIXELS + 16).clamp(60, chart.size.0 / 2);
    draw_row_head(&head, chart, name_room as i32 + 12)?;
    // Row i is drawn at y = rows - 1 - i, so the first category is on top.
    let mut ctx = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(name_room)
        .build_cartesian_2d(0.0..x_top, -0.5..rows as f64 - 0.5)?;
    ctx.configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_formatter(&|v| format!("{v:.decimals$}"))
        .x_desc(chart.y_label.as_str())
        .draw()?;
    let slot = 0.8 / chart.series.len().max(1) as f64;
    for (j, series) in chart.series.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let top = 0.4 - j as f64 * slot;
        ctx.draw_series(series.values.iter().enumerate().map(|(i, &v)| {
            let y = (rows - 1 - i) as f64 + top;
            Rectangle::new([(0.0, y), (v.max(0.0), y - slot)], color.filled())
        }))?;
    }
    let style = ("sans-serif", 12)
        .into_font()
        .into_text_style(root)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, name) in chart.categories.iter().enumerate() {
        let (x, y) = ctx.backend_coord(&(0.0, (rows - 1 - i) as f64));
        // `backend_coord` is in the whole chart's pixels.
        whole.draw(&Text::new(name.as_str(), (x - 6, y), style.clone()))?;
    }
    Ok(())
}

/// The caption of a row chart, centred, and for several series the
/// legend on one line under it, starting at `left` (the bars' left edge).
fn draw_row_head<DB: DrawingBackend>(
    head: &DrawingArea<DB, Shift>,
    chart: &BarChart,
    left: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let width = head.dim_in_pixel().0 as i32;
    let caption = ("sans-serif", 18)
        .into_font()
        .into_text_style(head)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let middle = ROWS_CAPTION_PIXELS as i32 / 2 + 2;
    head.draw(&Text::new(
        chart.title.as_str(),
        (width / 2, middle),
        caption,
    ))?;
    if chart.series.len() < 2 {
        return Ok(());
    }
    let label = ("sans-serif", 12)
        .into_font()
        .into_text_style(head)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let y = (ROWS_CAPTION_PIXELS + ROWS_LEGEND_PIXELS / 2) as i32;
    let mut x = left;
    for (j, series) in chart.series.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        head.draw(&Rectangle::new(
            [(x, y - 5), (x + 10, y + 5)],
            color.filled(),
        ))?;
        head.draw(&Text::new(series.name.as_str(), (x + 16, y), label.clone()))?;
        x += 16 + series.name.chars().count() as i32 * LABEL_CHAR_PIXELS as i32 + 24;
    }
    Ok(())
}

/// The value axis's top: a little above the largest finite value, with
/// room for the legend of a multi-series chart.
fn value_top(chart: &BarChart) -> f64 {
    let top = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let legend_inside = chart.layout == BarLayout::Columns && chart.series.len() > 1;
    let headroom = if legend_inside { 1.3 } else { 1.0 };
    nice_top(top * headroom)
}

/// The legend of a column chart of several series, in its upper right
/// corner (which [`value_top`] keeps free of bars).
fn draw_legend<'a, DB: DrawingBackend + 'a>(
    ctx: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    chart: &BarChart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if chart.series.len() > 1 {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// A table of values drawn as coloured cells: one row per item (layer),
/// one panel of columns per experiment, colour on a logarithmic scale.
/// Unlike one line per layer, it stays readable at any number of layers:
/// the picture grows a row per layer.
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// Caption above the panels.
    pub title: String,
    /// What the values are (shown under the caption).
    pub value_label: String,
    /// Row names, top to bottom.
    pub rows: Vec<String>,
    /// Panels side by side, sharing the rows.
    pub panels: Vec<HeatPanel>,
    /// Values at or below this are drawn as the lightest colour (the scale
    /// is logarithmic).
    pub floor: f64,
}

/// One panel of a [`Heatmap`].
#[derive(Debug, Clone)]
pub struct HeatPanel {
    /// Caption of the panel.
    pub title: String,
    /// Column names, left to right.
    pub columns: Vec<String>,
    /// `values[row][column]`.
    pub values: Vec<Vec<f64>>,
}

/// Cell size of a [`Heatmap`], in pixels.
const CELL_WIDTH: u32 = 58;
const CELL_HEIGHT: u32 = 18;

/// Pixels above the cells (caption, value label, panel titles, column
/// names) and below them.
const HEATMAP_TOP: u32 = 92;
const HEATMAP_BOTTOM: u32 = 16;

/// Gap between panels, in pixels.
const PANEL_GAP: u32 = 24;

/// Draw `map` as an SVG document, as tall as its rows need.
pub fn heatmap_svg(map: &Heatmap) -> Result<String, ReportError> {
    let longest = map
        .rows
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let names = longest * LABEL_CHAR_PIXELS + 20;
    let panels: u32 = map
        .panels
        .iter()
        .map(|p| p.columns.len() as u32 * CELL_WIDTH + PANEL_GAP)
        .sum();
    let size = (
        (names + panels + 12).max(480),
        HEATMAP_TOP + map.rows.len() as u32 * CELL_HEIGHT + HEATMAP_BOTTOM,
    );
    let mut svg = String::new();
    {
        let failed = |e: &dyn std::fmt::Display| ReportError::Chart {
            what: format!("heatmap {:?}", map.title),
            message: e.to_string(),
        };
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_heatmap(&root, map, names).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg)
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    map: &Heatmap,
    names: u32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let text = |size: u32, h: HPos| {
        ("sans-serif", size)
            .into_font()
            .into_text_style(root)
            .pos(Pos::new(h, VPos::Center))
    };
    root.draw(&Text::new(
        map.title.as_str(),
        (12, 16),
        text(18, HPos::Left),
    ))?;
    root.draw(&Text::new(
        map.value_label.as_str(),
        (12, 38),
        text(12, HPos::Left),
    ))?;
    let (lo, hi) = log_range(map);
    let cell_top = |row: usize| (HEATMAP_TOP + row as u32 * CELL_HEIGHT) as i32;
    for (row, name) in map.rows.iter().enumerate() {
        let y = cell_top(row) + CELL_HEIGHT as i32 / 2;
        root.draw(&Text::new(
            name.as_str(),
            (names as i32 - 8, y),
            text(12, HPos::Right),
        ))?;
    }
    let mut left = names as i32;
    for panel in &map.panels {
        let width = (panel.columns.len() as u32 * CELL_WIDTH) as i32;
        root.draw(&Text::new(
            panel.title.as_str(),
            (left + width / 2, 60),
            text(14, HPos::Center),
        ))?;
        for (c, column) in panel.columns.iter().enumerate() {
            let x = left + (c as u32 * CELL_WIDTH + CELL_WIDTH / 2) as i32;
            root.draw(&Text::new(column.as_str(), (x, 80), text(12, HPos::Center)))?;
        }
        for (row, values) in panel.values.iter().enumerate() {
            for (c, &v) in values.iter().enumerate() {
                let x = left + (c as u32 * CELL_WIDTH) as i32;
                let y = cell_top(row);
                let t = heat_level(v, map.floor, lo, hi);
                root.draw(&Rectangle::new(
                    [
                        (x, y),
                        (x + CELL_WIDTH as i32 - 1, y + CELL_HEIGHT as i32 - 1),
                    ],
                    heat_colour(t).filled(),
                ))?;
                let ink = if t > 0.6 { WHITE } else { BLACK };
                let shown = if v.is_finite() {
                    format!("{v:.1e}")
                } else {
                    "n/a".to_string()
                };
                root.draw(&Text::new(
                    shown,
                    (x + CELL_WIDTH as i32 / 2, y + CELL_HEIGHT as i32 / 2),
                    text(10, HPos::Center).color(&ink),
                ))?;
            }
        }
        left += width + PANEL_GAP as i32;
    }
    Ok(())
}

/// The range of `log10` of the map's values above its floor.
fn log_range(map: &Heatmap) -> (f64, f64) {
    let logs = map
        .panels
        .iter()
        .flat_map(|p| p.values.iter().flatten())
        .filter(|v| v.is_finite())
        .map(|v| v.max(map.floor).log10());
    logs.fold((map.floor.log10(), map.floor.log10()), |(lo, hi), l| {
        (lo.min(l), hi.max(l))
    })
}

/// Where `v` falls on the map's logarithmic scale, 0 (floor) to 1
/// (largest); a non-finite value is the darkest.
fn heat_level(v: f64, floor: f64, lo: f64, hi: f64) -> f64 {
    if !v.is_finite() {
        return 1.0;
    }
    if hi <= lo {
        return 0.0;
    }
    ((v.max(floor).log10() - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// Pale yellow (0) through orange to dark red (1).
fn heat_colour(t: f64) -> RGBColor {
    let mix = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
    let (from, to, t) = if t < 0.5 {
        ((255.0, 247.0, 188.0), (254.0, 153.0, 41.0), t * 2.0)
    } else {
        ((254.0, 153.0, 41.0), (140.0, 20.0, 20.0), t * 2.0 - 1.0)
    };
    RGBColor(
        mix(from.0, to.0, t),
        mix(from.1, to.1, t),
        mix(from.2, to.2, t),
    )
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

    /// The `y` of the text element showing exactly `label`.
    fn label_y(svg: &str, label: &str) -> f64 {
        let end = svg
            .find(&format!(">{label}</text>"))
            .or_else(|| svg.find(&format!(">\n{label}\n</text>")))
            .unwrap_or_else(|| panic!("{label} is not drawn"));
        let start = svg[..end].rfind("<text").expect("a text element");
        let tag = &svg[start..end];
        let y = tag.find(" y=\"").expect("a y attribute") + 4;
        let len = tag[y..].find('"').expect("closed");
        tag[y..y + len].parse().expect("a number")
    }

    /// Names of 60 layers, as long as VGG's or ResNet's.
    fn many_layers() -> Vec<String> {
        (0..60)
            .map(|i| format!("layer{}.conv{}", i / 3, i % 3))
            .collect()
    }

    #[test]
    fn a_row_chart_of_sixty_layers_gives_each_name_its_own_line() {
        let names = many_layers();
        let chart = BarChart {
            title: "density".into(),
            y_label: "percent".into(),
            categories: names.clone(),
            series: vec![
                Series {
                    name: "a".into(),
                    values: (0..60).map(f64::from).collect(),
                },
                Series {
                    name: "b".into(),
                    values: vec![1.0; 60],
                },
            ],
            layout: BarLayout::Rows,
            size: (960, 300),
        };
        let (_, height) = chart.pixel_size();
        assert!(height >= 60 * MIN_ROW_PIXELS, "{height}");
        let svg = bar_chart_svg(&chart).expect("drawn");
        let ys: Vec<f64> = names.iter().map(|n| label_y(&svg, n)).collect();
        for pair in ys.windows(2) {
            assert!(pair[1] - pair[0] >= 14.0, "names overlap: {ys:?}");
        }
        // The legend is above the first row, so it hides no bar.
        assert!(label_y(&svg, "a") + 14.0 <= ys[0], "legend over the rows");
        assert!(label_y(&svg, "density") < label_y(&svg, "a"));
    }

    #[test]
    fn a_heatmap_of_sixty_layers_gives_each_name_its_own_row() {
        let names = many_layers();
        let map = Heatmap {
            title: "damage".into(),
            value_label: "KL".into(),
            rows: names.clone(),
            panels: vec![HeatPanel {
                title: "sparsity".into(),
                columns: vec!["0.5".into(), "0.9".into()],
                values: (0..60)
                    .map(|i| vec![1e-4 * f64::from(i), f64::NAN])
                    .collect(),
            }],
            floor: 1e-5,
        };
        let svg = heatmap_svg(&map).expect("drawn");
        let ys: Vec<f64> = names.iter().map(|n| label_y(&svg, n)).collect();
        for pair in ys.windows(2) {
            assert!(
                pair[1] - pair[0] >= f64::from(CELL_HEIGHT),
                "rows overlap: {ys:?}"
            );
        }
        assert!(!svg.contains("NaN") && svg.contains("\nn/a\n"), "{svg}");
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
