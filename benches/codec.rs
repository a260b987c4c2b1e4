//! Speed of the `.sqz` codec on Han's Deep Compression SqueezeNet: encoding
//! (choosing storage, Huffman coding, writing bytes) and decoding (parsing,
//! checking, Huffman decoding, rebuilding dense layers), at 8 bits (his
//! exact weights) and after 6-bit weight sharing. Also the time to share
//! the weights of the whole network with k-means. Run with
//! `cargo bench --bench codec`; data from `SQZ_SHARED` (default `../shared`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use formats::sqz::{decode_model, encode_model, read_sqz, write_sqz};
use sqz::pipeline::params::Bits;
use sqz::pipeline::quantize::{quantize_model, KMeans, QuantizeSpec};

const TIMED: usize = 9;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time<T>(f: impl Fn() -> T) -> Duration {
    median(
        (0..TIMED)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let shared = std::env::var_os("SQZ_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let net = shared.join("models/squeezenet_v1.0-deep-compression/compressed_SqueezeNet.net");
    let han = formats::deep_compression::read_deep_compression(&net, None)
        .unwrap_or_else(|e| panic!("{}: {e} (set SQZ_SHARED)", net.display()));
    let spec = QuantizeSpec::uniform(Bits::new(6).expect("6 bits"), KMeans::default());
    let share = time(|| {
        let mut m = han.clone();
        quantize_model(&mut m, &spec, false)
    });
    let mut six = han.clone();
    quantize_model(&mut six, &spec, false);

    println!(
        "median of {TIMED} runs, {} threads",
        rayon::current_num_threads()
    );
    println!(
        "k-means weight sharing of all 26 layers at 6 bits: {:.1} ms",
        share.as_secs_f64() * 1e3
    );
    println!(
        "{:<28} {:>10} {:>12} {:>12}",
        "model", "bytes", "encode (ms)", "decode (ms)"
    );
    for (name, model) in [
        ("Han's model, exact (8 bit)", &han),
        ("Han's model, 6 bit", &six),
    ] {
        let bytes = write_sqz(&encode_model(model));
        let encode = time(|| write_sqz(&encode_model(model)));
        let decode = time(|| decode_model(&read_sqz(&bytes).expect("read")).expect("decode"));
        println!(
            "{name:<28} {:>10} {:>12.1} {:>12.1}",
            bytes.len(),
            encode.as_secs_f64() * 1e3,
            decode.as_secs_f64() * 1e3
        );
    }
}
