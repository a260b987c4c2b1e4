//! The report page: a self-contained HTML document with the charts inlined
//! as SVG, the tables behind them, and how each number was computed. A small
//! script marks `<body data-charts-loaded="N">` once all N charts have
//! rendered with a nonzero size, so a headless browser can check the page.

use std::fmt::Write;

use super::charts::{bar_chart_svg, histogram_svg, BarChart, BarLayout, Series};
use super::{Accuracy, LayerReport, ReportData, ReportError};

/// Bins of each weight histogram.
const HISTOGRAM_BINS: usize = 80;
/// Most centroids marked on a histogram (more would hide the bars).
const MAX_MARKED_CENTROIDS: usize = 256;

/// Number of charts on the page of `data`: four summary charts and one
/// histogram per layer.
pub fn chart_count(data: &ReportData) -> usize {
    4 + data.layers.len()
}

/// The HTML page of `data` and the models' `accuracy`.
pub fn render(data: &ReportData, accuracy: &Accuracy) -> Result<String, ReportError> {
    let mut html = String::new();
    let title = format!("sqz report: {}", file_name(&data.compressed_path));
    writeln!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body data-charts-expected=\"{}\">\n<h1>{}</h1>",
        escape(&title),
        chart_count(data),
        escape(&title)
    )?;
    summary(&mut html, data)?;
    stages(&mut html, data)?;
    accuracy_section(&mut html, accuracy)?;
    layers(&mut html, data)?;
    histograms(&mut html, data)?;
    writeln!(html, "<script>{SCRIPT}</script>\n</body>\n</html>")?;
    Ok(html)
}

fn summary(html: &mut String, data: &ReportData) -> Result<(), ReportError> {
    let ratio = data.original_file_bytes as f64 / data.compressed_file_bytes.max(1) as f64;
    write!(
        html,
        "<table class=\"summary\">\n<tr><th></th><th>file</th><th>bytes on disk</th></tr>\n\
         <tr><td>original</td><td>{}</td><td>{}</td></tr>\n\
         <tr><td>compressed</td><td>{}</td><td>{}</td></tr>\n\
         <tr><td>compression</td><td></td><td>{ratio:.2}&times;</td></tr>\n</table>\n",
        escape(&data.original_path.display().to_string()),
        data.original_file_bytes,
        escape(&data.compressed_path.display().to_string()),
        data.compressed_file_bytes,
    )?;
    Ok(())
}

fn stages(html: &mut String, data: &ReportData) -> Result<(), ReportError> {
    let s = data.stages;
    let names = ["original", "pruned", "quantized", "Huffman (.sqz file)"];
    let bytes = [s.original, s.pruned, s.quantized, s.huffman];
    let chart = BarChart {
        title: "Model size after each stage".into(),
        y_label: "kilobytes".into(),
        categories: names.iter().map(|n| n.to_string()).collect(),
        series: vec![Series {
            name: "size".into(),
            values: bytes.iter().map(|&b| b as f64 / 1000.0).collect(),
        }],
        layout: BarLayout::Columns,
        size: (720, 400),
    };
    writeln!(html, "<h2>Size after each stage</h2>")?;
    figure(html, &bar_chart_svg(&chart)?)?;
    writeln!(
        html,
        "<table>\n<tr><th>stage</th><th>bytes</th><th>vs original</th></tr>"
    )?;
    for (name, b) in names.iter().zip(bytes) {
        writeln!(
            html,
            "<tr class=\"stage\"><td>{name}</td><td>{b}</td><td>{:.2}&times;</td></tr>",
            s.original as f64 / b.max(1) as f64
        )?;
    }
    write!(html, "</table>\n{STAGES_EXPLAINED}")?;
    Ok(())
}

fn accuracy_section(html: &mut String, a: &Accuracy) -> Result<(), ReportError> {
    let chart = BarChart {
        title: format!("Accuracy on {} images", a.images),
        y_label: "percent".into(),
        categories: vec!["top-1".into(), "top-5".into(), "top-1 agreement".into()],
        series: vec![
            Series {
                name: "original".into(),
                values: vec![100.0 * a.original.0, 100.0 * a.original.1, 0.0],
            },
            Series {
                name: "compressed".into(),
                values: vec![
                    100.0 * a.compressed.0,
                    100.0 * a.compressed.1,
                    100.0 * a.agreement,
                ],
            },
        ],
        layout: BarLayout::Columns,
        size: (720, 400),
    };
    writeln!(html, "<h2>Accuracy</h2>")?;
    figure(html, &bar_chart_svg(&chart)?)?;
    write!(
        html,
        "<table>\n<tr><th></th><th>original</th><th>compressed</th></tr>\n\
         <tr><td>top-1</td><td>{:.2} %</td><td>{:.2} %</td></tr>\n\
         <tr><td>top-5</td><td>{:.2} %</td><td>{:.2} %</td></tr>\n\
         <tr><td>top-1 agreement</td><td></td><td>{:.2} %</td></tr>\n</table>\n\
         <p>Both models evaluated on the same {} images, each with its own preprocessing; \
         agreement is the share of images where both predict the same top-1 class.</p>\n",
        100.0 * a.original.0,
        100.0 * a.compressed.0,
        100.0 * a.original.1,
        100.0 * a.compressed.1,
        100.0 * a.agreement,
        a.images
    )?;
    Ok(())
}

fn layers(html: &mut String, data: &ReportData) -> Result<(), ReportError> {
    let names: Vec<String> = data.layers.iter().map(|l| l.stats.name.clone()).collect();
    let per_layer = |title: &str, y_label: &str, series: Vec<Series>| BarChart {
        title: title.into(),
        y_label: y_label.into(),
        categories: names.clone(),
        series,
        layout: BarLayout::Rows,
        size: (960, 300),
    };
    let density = per_layer(
        "Density per layer (nonzero weights)",
        "percent",
        vec![Series {
            name: "density".into(),
            values: data
                .layers
                .iter()
                .map(|l| 100.0 * l.stats.density())
                .collect(),
        }],
    );
    let bits = per_layer(
        "Bits per layer",
        "bits",
        vec![
            Series {
                name: "index bits per stored weight (fixed width)".into(),
                values: data
                    .layers
                    .iter()
                    .map(|l| f64::from(l.stats.index_bits))
                    .collect(),
            },
            Series {
                name: "file bits per weight (all weights, after Huffman)".into(),
                values: data
                    .layers
                    .iter()
                    .map(|l| l.stats.file_bits_per_weight())
                    .collect(),
            },
        ],
    );
    writeln!(html, "<h2>Layers</h2>")?;
    figure(html, &bar_chart_svg(&density)?)?;
    figure(html, &bar_chart_svg(&bits)?)?;
    writeln!(html, "{BITS_EXPLAINED}<table>\n<tr><th>layer</th><th>shape</th><th>weights</th><th>nonzero</th><th>density</th><th>shared values</th><th>index bits</th><th>file bits/weight</th><th>original B</th><th>pruned B</th><th>quantized B</th><th>.sqz B</th></tr>")?;
    for l in &data.layers {
        let s = &l.stats;
        let [o, i, kh, kw] = l.shape;
        writeln!(
            html,
            "<tr><td>{}</td><td>{o}&times;{i}&times;{kh}&times;{kw}</td><td>{}</td><td>{}</td><td>{:.1} %</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.name),
            s.weights,
            s.nonzeros,
            100.0 * s.density(),
            s.codebook.map_or("&ndash;".to_string(), |k| k.to_string()),
            s.index_bits,
            s.file_bits_per_weight(),
            s.bytes.original,
            s.bytes.pruned,
            s.bytes.quantized,
            s.bytes.huffman,
        )?;
    }
    writeln!(html, "</table>")?;
    Ok(())
}

fn histograms(html: &mut String, data: &ReportData) -> Result<(), ReportError> {
    write!(
        html,
        "<h2>Weight distributions</h2>\n<p>Histogram of each original layer's nonzero weights \
         ({HISTOGRAM_BINS} bins; exact zeros left out), with the compressed layer's shared values \
         (its codebook centroids) marked in red.</p>\n<div class=\"grid\">\n"
    )?;
    for layer in &data.layers {
        let marked = layer.centroids.len() <= MAX_MARKED_CENTROIDS;
        let centroids: &[f32] = if marked { &layer.centroids } else { &[] };
        let svg = histogram_svg(
            &layer.stats.name,
            &layer.original_nonzero,
            centroids,
            HISTOGRAM_BINS,
            (460, 260),
        )?;
        writeln!(
            html,
            "<figure class=\"chart\">{svg}<figcaption>{}</figcaption></figure>",
            escape(&caption(layer, marked))
        )?;
    }
    writeln!(html, "</div>")?;
    Ok(())
}

/// The caption under a layer's histogram.
fn caption(layer: &LayerReport, marked: bool) -> String {
    let shared = match layer.stats.codebook {
        None => "not quantized".to_string(),
        Some(_) if !marked => format!("{} shared values (too many to mark)", layer.centroids.len()),
        Some(_) => format!("{} shared nonzero values marked", layer.centroids.len()),
    };
    format!(
        "{}: {} nonzero original weights, {} zeros left out; {shared}",
        layer.stats.name,
        layer.original_nonzero.len(),
        layer.original_zeros
    )
}

/// Append one chart.
fn figure(html: &mut String, svg: &str) -> std::fmt::Result {
    writeln!(html, "<figure class=\"chart\">{svg}</figure>")
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `text` with HTML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
td:first-child{text-align:left}figure{margin:1em 0}.grid{display:flex;flex-wrap:wrap;gap:8px}\
.grid figure{width:460px;margin:0}figcaption{font-size:12px;color:#555}";

const STAGES_EXPLAINED: &str = "<p>How each bar is computed, from the compressed model's weights \
(bit-packed parts rounded up to whole bytes per layer):</p>\n<ul>\n\
<li><b>original</b>: every weight and bias as a dense 32-bit float (4 bytes each).</li>\n\
<li><b>pruned</b>: biases at 4 bytes; a layer with zeros keeps only its nonzero weights as 4-byte \
floats plus their positions as fixed-width relative indices (gap symbols of 2 to 8 bits with skip \
symbols for long gaps, the width that gives the fewest bytes), unless dense storage is smaller.</li>\n\
<li><b>quantized</b>: as pruned, but a layer whose stored weights take few distinct values stores \
a 32-bit codebook of those values plus one fixed-width index of ceil(log2 k) bits per stored weight \
(when smaller).</li>\n\
<li><b>Huffman</b>: the actual .sqz file on disk: index and position streams Huffman-coded where \
that is smaller, floats stored as float16 where exact, plus the graph, names and headers (which \
the first three bars do not count).</li>\n</ul>\n";

const BITS_EXPLAINED: &str = "<p><b>Density</b> is the share of nonzero weights. <b>Index bits</b> \
is the fixed-width codebook index per stored weight (32 for a layer without codebook). \
<b>File bits per weight</b> is the layer's weight data in the .sqz file (values or codebook, \
positions and codes, after Huffman coding) times 8 over all its weights, pruned ones included.</p>\n";

const SCRIPT: &str = "window.addEventListener('load',function(){\
var charts=document.querySelectorAll('figure.chart > svg, figure.chart > img');var ok=0;\
charts.forEach(function(c){var r=c.getBoundingClientRect();\
var drawn=c.tagName.toLowerCase()==='img'?(c.complete&&c.naturalWidth>0):c.childElementCount>0;\
if(drawn&&r.width>0&&r.height>0){ok++;}});\
document.body.setAttribute('data-charts-loaded',ok===charts.length?String(ok):('incomplete '+ok+'/'+charts.length));});";
