//! `decode`: rebuild a compressed model's dense layers and write them out
//! losslessly (as a dense `.sqz`).

use std::io::Write;
use std::path::PathBuf;

use super::load;
use super::output::{check_output, write_atomic};
use super::ModelArgs;
use crate::container::encode_model_dense;
use formats::sqz::write_sqz;

/// Arguments of `decode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Output file (`.sqz`, every layer stored dense).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
}

/// Run `decode`.
pub fn run(args: Args) -> anyhow::Result<()> {
    check_output(&args.output, &args.model)?;
    let model = load::load(&args.model)?;
    let bytes = write_sqz(&encode_model_dense(&model));
    write_atomic(&args.output, &bytes)?;
    writeln!(
        std::io::stdout(),
        "wrote {} ({} bytes, {} weights dense)",
        args.output.display(),
        bytes.len(),
        model.weight_count()
    )?;
    Ok(())
}
