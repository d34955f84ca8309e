# Sourced by every recipe's run.sh: ESPnet-style options and stages, written once.
#
#   recipe_options NAME...   the recipe's options: --stop-stage sets stop_stage, and so on; each
#                            variable has its default before parse_options runs
#   parse_options "$@"       --NAME VALUE sets NAME; a NAME whose default is true or false is a flag:
#                            a bare --NAME (or --NAME true) sets it true and, where the recipe
#                            defines preset_NAME, calls it there (so options given after --smoke
#                            override its presets); anything else is an error naming the option
#   write_options FILE       every option's value as one JSON object (for local/*.py, RESULTS)
#   log N TEXT               a stage's banner, with the time
#   want N                   whether stage N lies within --stage .. --stop-stage
# shellcheck shell=bash

_recipe_options=()

recipe_options() { _recipe_options=("$@"); }

parse_options() {
  local name
  while [[ $# -gt 0 ]]; do
    name=${1#--}; name=${name//-/_}
    if [[ $1 != --* || " ${_recipe_options[*]} " != *" $name "* ]]; then
      echo "$0: unknown option $1 (options: $(printf -- '--%s ' "${_recipe_options[@]//_/-}"))" >&2
      exit 2
    fi
    if [[ ${!name} == false || ${!name} == true ]] && [[ $# -eq 1 || ( $2 != true && $2 != false ) ]]; then
      set -- "$1" true "${@:2}"  # a bare flag: --smoke is --smoke true (a flag takes true or false only)
    fi
    if [[ $# -lt 2 ]]; then echo "$0: $1 needs a value" >&2; exit 2; fi
    printf -v "$name" '%s' "$2"
    shift 2
    if [[ ${!name} == true ]] && declare -F "preset_$name" > /dev/null; then "preset_$name"; fi
  done
}

write_options() {
  local file=$1 name pairs=()
  for name in "${_recipe_options[@]}"; do pairs+=("$name=${!name}"); done
  "${py:-python3}" -c 'import json, sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:]), indent=1))' \
    "${pairs[@]}" > "$file.tmp" && mv "$file.tmp" "$file"
}

log() { printf '\n\033[1m== stage %s: %s\033[0m  (%s)\n' "$1" "$2" "$(date +%T)"; }

want() { (( $1 >= stage && $1 <= stop_stage )); }
