//! The `sqz-compress` binary; everything lives in [`sqz::cli`].

fn main() -> std::process::ExitCode {
    sqz::cli::main()
}
