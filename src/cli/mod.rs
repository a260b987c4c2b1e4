//! The `sqz-compress` command line.
//!
//! Every subcommand is one variant of [`Command`] holding the clap arguments
//! of its own module, which also has the `run` function; adding a command
//! means adding a module and a variant. Errors are printed as one line
//! `error: ...` on stderr. Exit codes: 0 success, 1 for problems with the
//! input (bad arguments, unreadable or invalid files), 2 for internal
//! errors (errors [`crate::error::is_internal`] recognises, and panics),
//! i.e. bugs in sqz.

mod bench;
mod classify;
mod decode;
mod eval;
mod fetch;
mod inspect;
mod inspect_sqz;
pub mod load;
mod options;
mod output;
mod progress;
mod report;
mod sensitivity;
mod stages;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use formats::Preprocess;

/// Deep Compression for SqueezeNet: evaluate, inspect and compress models.
#[derive(Debug, Parser)]
#[command(
    name = "sqz-compress",
    version,
    about,
    after_help = "Exit codes: 0 success, 1 user error (bad input file or arguments), 2 internal error (a bug in sqz)."
)]
pub struct Cli {
    /// Hide progress bars and notes: print only results and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the five most likely classes of each image.
    #[command(
        after_help = "Example:\n  sqz-compress classify squeezenet_v1.1.ncnn.param cat.jpg dog.png"
    )]
    Classify(classify::Args),
    /// Measure top-1 and top-5 accuracy on a labelled image folder.
    #[command(
        after_help = "Example:\n  sqz-compress eval small.sqz --reference squeezenet_v1.1.ncnn.param --images imagenet-sample --json"
    )]
    Eval(eval::Args),
    /// Show per-layer shapes, parameter counts, sparsity and distinct values.
    #[command(after_help = "Example:\n  sqz-compress inspect small.sqz")]
    Inspect(inspect::Args),
    /// Prune the smallest weights to a target sparsity and write a `.sqz`.
    #[command(
        after_help = "Example:\n  sqz-compress prune squeezenet_v1.1.ncnn.param --sparsity 0.7 --layer-sparsity convrelu_0=0 -o pruned.sqz"
    )]
    Prune(stages::PruneCmd),
    /// Share weights with per-layer k-means (B-bit codebooks) and write a `.sqz`.
    #[command(
        after_help = "Example:\n  sqz-compress quantize pruned.sqz --bits 6 --calib images/ -o small.sqz"
    )]
    Quantize(stages::QuantizeCmd),
    /// Prune, then share weights, in one run.
    #[command(
        after_help = "Example:\n  sqz-compress compress squeezenet_v1.1.ncnn.param --target-size 481280 --calib images/ -o small.sqz"
    )]
    Compress(stages::CompressCmd),
    /// Rebuild dense layers and write them losslessly: dense `.sqz`, `.onnx` or `.caffemodel`.
    #[command(after_help = "Example:\n  sqz-compress decode small.sqz -o small.onnx")]
    Decode(decode::Args),
    /// Measure how much pruning or sharing each layer alone hurts the output.
    #[command(
        after_help = "Example:\n  sqz-compress sensitivity squeezenet_v1.1.ncnn.param --calib images/ --chart sensitivity.svg"
    )]
    Sensitivity(sensitivity::Args),
    /// Write an HTML report comparing a compressed `.sqz` with its original.
    #[command(
        after_help = "Example:\n  sqz-compress report squeezenet_v1.1.ncnn.param small.sqz --images imagenet-sample -o report/"
    )]
    Report(report::Args),
    /// Download a public SqueezeNet release, verified by SHA-256.
    #[command(
        after_help = "Example:\n  sqz-compress fetch squeezenet1.0-deep-compression --dir models/"
    )]
    Fetch(fetch::Args),
    /// Time the forward pass on synthetic input, with a per-operation profile.
    #[command(
        after_help = "Example:\n  sqz-compress bench squeezenet_v1.1.ncnn.param --batch 16 --threads 2 --json"
    )]
    Bench(bench::Args),
}

impl Command {
    /// Run the command, writing its results to stdout.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Classify(args) => classify::run(args),
            Command::Eval(args) => eval::run(args),
            Command::Inspect(args) => inspect::run(args),
            Command::Prune(cmd) => stages::prune(cmd),
            Command::Quantize(cmd) => stages::quantize(cmd),
            Command::Compress(cmd) => stages::compress(cmd),
            Command::Decode(args) => decode::run(args),
            Command::Sensitivity(args) => sensitivity::run(args),
            Command::Report(args) => report::run(args),
            Command::Fetch(args) => fetch::run(args),
            Command::Bench(args) => bench::run(args),
        }
    }
}

/// The model a command works on.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Model file: `.sqz`, ncnn `.param` (with its `.bin` beside it), Deep
    /// Compression `.net`, ONNX `.onnx`, Caffe `.caffemodel`, or
    /// `.safetensors` weights with `--graph`.
    pub model: PathBuf,
    /// Caffe prototxt of a `.net` or `.caffemodel` (default: the only `.prototxt` beside it).
    #[arg(long, value_name = "PATH")]
    pub prototxt: Option<PathBuf>,
    /// For a `.safetensors` model (weights only): the model file giving
    /// the graph, layer names and shapes (any other format).
    #[arg(long, value_name = "MODEL")]
    pub graph: Option<PathBuf>,
}

impl ModelArgs {
    /// The reader options these arguments ask for.
    pub fn read_options(&self) -> formats::ReadOptions {
        formats::ReadOptions {
            prototxt: self.prototxt.clone(),
            preprocess: None,
            graph: self.graph.clone(),
        }
    }
}

/// Preprocessing presets selectable with `--preprocess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreprocessPreset {
    /// RGB, shorter side 256, centre crop 224, ImageNet mean/std on [0,1].
    Torchvision,
    /// BGR, 256x256, centre crop 227, 0..255 minus (104, 117, 123).
    Caffe,
}

impl PreprocessPreset {
    /// The preset's parameters.
    pub fn preprocess(self) -> Preprocess {
        match self {
            PreprocessPreset::Torchvision => Preprocess::torchvision(),
            PreprocessPreset::Caffe => Preprocess::caffe(),
        }
    }
}

/// Exit code for problems with the user's input.
const EXIT_USER: u8 = 1;
/// Exit code for bugs.
const EXIT_INTERNAL: u8 = 2;

/// Parse the process arguments, run the command and turn the outcome into
/// an exit code, printing any error as one line on stderr.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: {}{place}", one_line(&message));
    }));
    progress::set_quiet(cli.quiet);
    match std::panic::catch_unwind(move || cli.command.run()) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        // Whoever read the results (`| head`) has all they wanted.
        Ok(Err(e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(exit_code(&e))
        }
        // The panic hook has already printed the message.
        Err(_) => ExitCode::from(EXIT_INTERNAL),
    }
}

/// Whether `error` is stdout closed by its reader: not a failure of the
/// command, and no message is due (as with `grep`, `rg`).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The exit code of a failed command: internal errors are bugs.
fn exit_code(error: &anyhow::Error) -> u8 {
    if crate::error::is_internal(error.as_ref()) {
        EXIT_INTERNAL
    } else {
        EXIT_USER
    }
}

/// Handle a clap outcome that is not a parsed command line: help and
/// version go to stdout with success, usage errors become one line.
fn clap_exit(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            match write!(std::io::stdout(), "{}", e.render()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot print the help: {e}");
                    ExitCode::from(EXIT_USER)
                }
                _ => ExitCode::SUCCESS,
            }
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let commands: Vec<String> = Cli::command()
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .collect();
            eprintln!(
                "error: no command given; use one of {} (see 'sqz-compress --help')",
                commands.join(", ")
            );
            ExitCode::from(EXIT_USER)
        }
        _ => {
            // clap's message, without the usage and tips that follow it.
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| {
                    !l.starts_with("Usage:") && !l.starts_with("tip:") && !l.starts_with("For more")
                })
                .filter(|l| !l.is_empty())
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("error: {message} (see 'sqz-compress --help')");
            ExitCode::from(EXIT_USER)
        }
    }
}

/// An error and its causes on one line. Causes whose text the message
/// already contains (errors that print their source themselves) are not
/// repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = one_line(&cause.to_string());
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    message
}

/// Collapse a possibly multi-line message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InternalError;

    #[test]
    fn internal_errors_exit_2_even_under_context_and_others_exit_1() {
        let internal = anyhow::Error::from(InternalError("broken invariant".into()))
            .context("while compressing");
        assert_eq!(exit_code(&internal), EXIT_INTERNAL);
        let user = anyhow::anyhow!("cannot read model.param").context("while loading");
        assert_eq!(exit_code(&user), EXIT_USER);
    }
}
