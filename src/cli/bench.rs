//! `bench`: inference speed of a model in the engine, with a profile of
//! where the time goes by kind of operation, and with `--per-node` by node.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use formats::{Model, Node, Op};
use serde::Serialize;

use super::{load, ModelArgs};
use crate::engine::{Session, Tensor};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Images per forward pass.
    #[arg(long, default_value_t = 1, value_name = "N")]
    batch: usize,
    /// Worker threads (default: one per core, or RAYON_NUM_THREADS).
    #[arg(long, value_name = "T")]
    threads: Option<usize>,
    /// Timed runs; the median, fastest and slowest are reported.
    #[arg(long, default_value_t = 7, value_name = "R")]
    runs: usize,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 2, value_name = "W")]
    warmup: usize,
    /// Compute convolutions on the portable im2col + faer path, as on CPUs
    /// without AVX-512, instead of the direct kernels on blocked
    /// activations.
    #[arg(long)]
    im2col: bool,
    /// Also print the time of every node of the graph (about zero for a
    /// node fused into another).
    #[arg(long)]
    per_node: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Most images one benchmark batch may hold: SqueezeNet v1.0 keeps up to
/// about 15 MB of activations per image alive, so 128 need about 2 GB.
const MAX_BATCH: usize = 128;

/// Run `bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_BATCH).contains(&args.batch),
        "--batch must be between 1 and {MAX_BATCH}"
    );
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    anyhow::ensure!(args.threads != Some(0), "--threads must be at least 1");
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(threads) = args.threads {
        pool = pool.num_threads(threads);
    }
    let pool = pool.build().context("cannot start the worker threads")?;
    pool.install(|| measure(&args))
}

/// Load, prepare, warm up, time and profile; then print.
fn measure(args: &Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let model = load::load(&args.model)?;
    let load_time = start.elapsed();
    let start = Instant::now();
    let session = if args.im2col {
        Session::with_kernel(&model, None)
    } else {
        Session::new(&model)
    }?;
    let prepare_time = start.elapsed();
    let input = synthetic_input(&model, args.batch)?;
    for _ in 0..args.warmup {
        session.run(&input)?;
    }
    let mut times = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let start = Instant::now();
        session.run(&input)?;
        times.push(start.elapsed());
    }
    times.sort();
    let rate = |time: Duration| args.batch as f64 / time.as_secs_f64();
    let nodes = node_times(&model, &session, &input, args.runs)?;
    let report = Report {
        images_per_sec: rate(times[times.len() / 2]),
        min: rate(times[times.len() - 1]),
        max: rate(times[0]),
        load_ms: load_time.as_secs_f64() * 1e3,
        prepare_ms: prepare_time.as_secs_f64() * 1e3,
        profile: by_kind(&nodes),
        nodes,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report.json(args))?)?;
    } else {
        report.print(&mut out, args)?;
    }
    Ok(())
}

/// Input of `batch` images of the model's size with fixed values in the
/// range of preprocessed images.
fn synthetic_input(model: &Model, batch: usize) -> anyhow::Result<Tensor> {
    let side = model.preprocess.crop as usize;
    let len = batch * 3 * side * side;
    let data = (0..len)
        .map(|i| ((i * 7919) % 251) as f32 / 125.0 - 1.0)
        .collect();
    Ok(Tensor::new([batch, 3, side, side], data)?)
}

/// One node's mean time per run.
struct NodeTime {
    name: String,
    kind: String,
    time: Duration,
}

/// Mean time per run of every node in graph order, over `runs` runs (about
/// zero for a node fused into another, such as a concatenation its inputs
/// write straight into).
fn node_times(
    model: &Model,
    session: &Session,
    input: &Tensor,
    runs: usize,
) -> anyhow::Result<Vec<NodeTime>> {
    let mut totals = vec![Duration::ZERO; model.graph.nodes.len()];
    for _ in 0..runs {
        let (_, times) = session.run_profiled(input)?;
        totals
            .iter_mut()
            .zip(times)
            .for_each(|(t, time)| *t += time);
    }
    Ok(model
        .graph
        .nodes
        .iter()
        .zip(totals)
        .map(|(node, total)| NodeTime {
            name: node.name.clone(),
            kind: op_kind(model, node),
            time: total / runs as u32,
        })
        .collect())
}

/// Time per kind of operation, in order of first appearance.
fn by_kind(nodes: &[NodeTime]) -> Vec<(String, Duration)> {
    let mut kinds: Vec<(String, Duration)> = Vec::new();
    for node in nodes {
        match kinds.iter_mut().find(|(kind, _)| *kind == node.kind) {
            Some((_, total)) => *total += node.time,
            None => kinds.push((node.kind.clone(), node.time)),
        }
    }
    kinds
}

/// The profile's name for what `node` does: ungrouped convolutions by
/// kernel size, grouped and depthwise ones apart (they run on other
/// kernels), LRN and Clip by name.
fn op_kind(model: &Model, node: &Node) -> String {
    match &node.op {
        Op::Conv(conv) => match model.layers.get(conv.layer) {
            Some(layer) => {
                let [_, in_c, kh, kw] = layer.shape;
                let grouping = match conv.groups {
                    1 => "",
                    _ if in_c == 1 => "depthwise ",
                    _ => "grouped ",
                };
                format!("{grouping}conv {kh}x{kw}")
            }
            None => "conv".into(),
        },
        Op::Pool(_) | Op::GlobalAvgPool => "pooling".into(),
        Op::Concat => "concat".into(),
        Op::Lrn(_) => "lrn".into(),
        Op::Clip(_) => "clip".into(),
        _ => "other".into(),
    }
}

/// The `bench --json` output.
#[derive(Serialize)]
struct BenchJson<'a> {
    model: String,
    batch: usize,
    threads: usize,
    runs: usize,
    warmup: usize,
    path: &'static str,
    images_per_sec: f64,
    images_per_sec_min: f64,
    images_per_sec_max: f64,
    load_ms: f64,
    prepare_ms: f64,
    /// Milliseconds per op kind, in a stable (sorted) order.
    op_ms: std::collections::BTreeMap<&'a str, f64>,
    /// With `--per-node`: milliseconds of each node, in graph order.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_ms: Option<Vec<NodeJson<'a>>>,
}

/// One node's row of `node_ms`.
#[derive(Serialize)]
struct NodeJson<'a> {
    name: &'a str,
    kind: &'a str,
    ms: f64,
}

/// What `bench` measured.
struct Report {
    /// Median over the timed runs.
    images_per_sec: f64,
    /// Slowest and fastest run.
    min: f64,
    max: f64,
    load_ms: f64,
    prepare_ms: f64,
    profile: Vec<(String, Duration)>,
    nodes: Vec<NodeTime>,
}

impl Report {
    fn threads() -> usize {
        rayon::current_num_threads()
    }

    fn print(&self, out: &mut impl Write, args: &Args) -> std::io::Result<()> {
        writeln!(out, "model      {}", args.model.model.display())?;
        writeln!(
            out,
            "setup      batch {}, {} threads, median of {} runs after {} warm-up runs{}",
            args.batch,
            Self::threads(),
            args.runs,
            args.warmup,
            if args.im2col { ", im2col path" } else { "" }
        )?;
        writeln!(
            out,
            "load       {:.1} ms (+ {:.1} ms packing weights)",
            self.load_ms, self.prepare_ms
        )?;
        writeln!(
            out,
            "images/s   {:.1} (min {:.1}, max {:.1})",
            self.images_per_sec, self.min, self.max
        )?;
        let total: Duration = self.profile.iter().map(|(_, t)| *t).sum();
        writeln!(
            out,
            "time per batch by operation (mean of {} runs):",
            args.runs
        )?;
        for (kind, time) in &self.profile {
            writeln!(
                out,
                "  {kind:<12} {:>8.2} ms {:>5.1} %",
                time.as_secs_f64() * 1e3,
                100.0 * time.as_secs_f64() / total.as_secs_f64()
            )?;
        }
        if args.per_node {
            writeln!(out, "time per batch by node:")?;
            let width = self.nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
            for node in &self.nodes {
                writeln!(
                    out,
                    "  {:<width$} {:<12} {:>8.3} ms {:>5.1} %",
                    node.name,
                    node.kind,
                    node.time.as_secs_f64() * 1e3,
                    100.0 * node.time.as_secs_f64() / total.as_secs_f64()
                )?;
            }
        }
        Ok(())
    }

    fn json<'a>(&'a self, args: &'a Args) -> BenchJson<'a> {
        BenchJson {
            model: args.model.model.display().to_string(),
            batch: args.batch,
            threads: Self::threads(),
            runs: args.runs,
            warmup: args.warmup,
            path: if args.im2col { "im2col" } else { "packed" },
            images_per_sec: self.images_per_sec,
            images_per_sec_min: self.min,
            images_per_sec_max: self.max,
            load_ms: self.load_ms,
            prepare_ms: self.prepare_ms,
            op_ms: self
                .profile
                .iter()
                .map(|(kind, time)| (kind.as_str(), time.as_secs_f64() * 1e3))
                .collect(),
            node_ms: args.per_node.then(|| {
                self.nodes
                    .iter()
                    .map(|node| NodeJson {
                        name: &node.name,
                        kind: &node.kind,
                        ms: node.time.as_secs_f64() * 1e3,
                    })
                    .collect()
            }),
        }
    }
}
