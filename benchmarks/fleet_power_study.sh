#!/usr/bin/env bash
# Issue 16's study with evaluation power (benchmarks/fleet_power_study.toml), resumable across
# machines and sessions. The full study is many hours on 2 CPU cores, so its finished runs
# are kept in the repository (benchmarks/results/fleet-power-study/: the experiment's
# settings and one Parquet file per finished run). This script regenerates both worlds,
# checks they are byte-identical to the ones the kept runs used (worlds.md5: results from
# another world are never pooled), links the kept folder into the project as the
# experiment's folder, and runs what is missing: new runs land in the repository directly,
# each by write-then-rename, so a kill at any moment loses at most the run in progress.
#   bash benchmarks/fleet_power_study.sh [WORKDIR] [TOML] [experiment run options...]
# (defaults /tmp/fleet-power and benchmarks/fleet_power_study.toml; another experiment on the
# same worlds, such as benchmarks/fleet_self_training.toml, shares the worlds and project
# and keeps its runs in benchmarks/results/<its name>/). Then `git add
# benchmarks/results/<name>` keeps what ran. Raise `seeds` or add strategies in the toml to
# extend it; any other change needs a new experiment name. Options after TOML go to
# `scenesift experiment run`: `--first badge` runs BADGE's missing seeds before the rest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
work=${1:-/tmp/fleet-power}
toml=$(realpath "${2:-$here/fleet_power_study.toml}")
bin=$repo/.venv/bin
name=$(sed -n 's/^name *= *"\(.*\)".*/\1/p' "$toml" | head -1)
if [ -z "$name" ]; then
  echo "error: $toml has no top-level name = \"...\"" >&2
  exit 1
fi
kept=$here/results/$name
project=$work/project

mkdir -p "$work" "$kept"
if [ ! -f "$work/fleet/labels.json" ]; then
  "$bin/scenesift" synth "$work/fleet" --frames 2000 --workers 2 \
    --config "$here/fleet_world.toml"
fi
if [ ! -f "$work/fleet_eval/labels.json" ]; then
  "$bin/scenesift" synth "$work/fleet_eval" --frames 4000 --seed 1 --drive-prefix eval_ \
    --workers 2 --config "$here/fleet_eval_world.toml"
fi

fingerprint() {  # labels and every image byte of both worlds
  for w in fleet fleet_eval; do
    (cd "$work/$w" && md5sum labels.json | sed "s| labels.json| $w/labels.json|" \
      && find images -type f | LC_ALL=C sort | xargs cat | md5sum | sed "s|-|$w/images|")
  done
}
if [ -f "$kept/worlds.md5" ]; then
  if ! diff <(fingerprint) "$kept/worlds.md5" >/dev/null; then
    echo "error: the regenerated worlds in $work differ from those of the kept runs" \
      "($kept/worlds.md5); pooling them would mix two benchmarks" >&2
    exit 1
  fi
else
  fingerprint > "$kept/worlds.md5"
fi

if [ ! -f "$project/catalog.sqlite" ]; then
  "$bin/scenesift" init "$project" --split 0.85,0.15,0
  "$bin/scenesift" import bdd "$work/fleet/labels.json" -p "$project" --as oracle \
    --images "$work/fleet/images"
  "$bin/scenesift" import bdd "$work/fleet_eval/labels.json" -p "$project" --as oracle \
    --split test --images "$work/fleet_eval/images"
fi
mkdir -p "$project/experiments"
if [ ! -L "$project/experiments/$name" ]; then
  rm -rf "$project/experiments/$name"
  ln -s "$kept" "$project/experiments/$name"
fi

"$bin/scenesift" experiment run "$toml" -p "$project" "${@:3}"
"$bin/scenesift" report -p "$project" --experiment "$name" --out "$work/$name.html"
