#!/bin/sh
# Fuzz every target in turn for SECONDS_EACH seconds (default 600), from the
# repository root or fuzz/. New corpus entries go to fuzz/corpus/<target>
# (not committed); crashes to fuzz/artifacts/<target>/. Logs: fuzz/logs/.
set -u
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-600}
TARGETS=${TARGETS:-"sqz_reader ncnn_reader deep_compression_reader onnx_reader caffemodel_reader huffman_decode gap_decode jpeg_decoder safetensors_reader"}
mkdir -p fuzz/logs
for t in $TARGETS; do
    mkdir -p "fuzz/corpus/$t"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 > "fuzz/logs/$t.log" 2>&1
    echo "$t: exit $? ($(grep -E 'stat::number_of_executed_units' "fuzz/logs/$t.log" | tail -1))"
done
