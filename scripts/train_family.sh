#!/usr/bin/env bash
# The Fashion-MNIST runs behind docs/results.md: the family's accuracy against MACs, the headline model, and the
# ReLU twin of the quantization experiment. Every run is the project's own `mobilenet train`; only the model and
# the schedule differ (SGD + Nesterov, lr 0.1 x batch/128, cosine, label smoothing 0.1, EMA, crop/flip/erasing).
#
#   scripts/train_family.sh RUNS_DIR [NAME...]     # run the named rows (default: all), one after another
#   PARALLEL=1 scripts/train_family.sh RUNS_DIR     # all at once (a GPU shares well; a 2-core CPU does not)
#
# MOBILENET overrides the command (default: `mobilenet`); extra `train` flags go in TRAIN_FLAGS (e.g. --data-dir).
set -euo pipefail
runs=${1:?usage: scripts/train_family.sh RUNS_DIR [NAME...]}
shift
mobilenet=${MOBILENET:-mobilenet}
batch=${BATCH:-256}

# name | model | alpha | epochs | extra flags
table="
v2_1.0_e60       mobilenet_v2        1.0  60
v2_1.0_relu_e60  mobilenet_v2        1.0  60 --activation relu
v2_1.4_e60       mobilenet_v2        1.4  60
v2_0.75_e40      mobilenet_v2        0.75 40
v2_0.5_e40       mobilenet_v2        0.5  40
v1_1.0_e40       mobilenet_v1        1.0  40
v1_0.75_e40      mobilenet_v1        0.75 40
v1_shallow_e40   mobilenet_v1        1.0  40 --shallow
v1_0.5_e40       mobilenet_v1        0.5  40
v3s_1.0_e40      mobilenet_v3_small  1.0  40
v3s_0.75_e40     mobilenet_v3_small  0.75 40
"

mkdir -p "$runs"
while read -r name model alpha epochs extra; do
    [[ -z "$name" ]] && continue
    if [[ $# -gt 0 ]] && [[ ! " $* " == *" $name "* ]]; then continue; fi
    resume=()
    [[ -f "$runs/$name/last.state.pt" ]] && resume=(--resume)
    # shellcheck disable=SC2086 # extra and TRAIN_FLAGS are word lists on purpose
    cmd=($mobilenet train --out "$runs/$name" "${resume[@]}" --model "$model" --alpha "$alpha" --epochs "$epochs"
         --batch-size "$batch" --seed 0 --quiet $extra ${TRAIN_FLAGS:-})
    echo "$(date -u +%FT%TZ) start $name: ${cmd[*]}"
    if [[ ${PARALLEL:-0} == 1 ]]; then
        "${cmd[@]}" >"$runs/$name.log" 2>&1 &
    else
        "${cmd[@]}" 2>&1 | tee "$runs/$name.log"
    fi
done <<<"$table"
wait
echo "$(date -u +%FT%TZ) all done"
