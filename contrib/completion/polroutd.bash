# bash completion for polroutd(8); installed as
# /usr/share/bash-completion/completions/polroutd.
# tests/test_packaging.py checks that every command, option and --format value of the parser
# is here.

_polroutd() {
    local cur prev words cword
    _init_completion || return

    local commands="run plan apply check-config render flush status demo"
    local formats="ip-batch ifcfg interfaces networkd nmcli"

    case $prev in
        --config)
            # polroutd.toml files, and directories to descend into
            _filedir toml
            return
            ;;
        --out)
            _filedir -d
            return
            ;;
        --format)
            COMPREPLY=($(compgen -W "$formats" -- "$cur"))
            return
            ;;
        --url)
            COMPREPLY=($(compgen -W "http://127.0.0.1:9641" -- "$cur"))
            return
            ;;
    esac

    local i command=""
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -*) ;;
            *) command=${words[i]}; break ;;
        esac
    done

    local opts
    case $command in
        "") opts="--help --version --debug"
            if [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "$commands" -- "$cur"))
                return
            fi ;;
        run | apply | check-config | flush) opts="--help --debug --config" ;;
        plan) opts="--help --debug --config --json" ;;
        render) opts="--help --debug --config --format --out" ;;
        status) opts="--help --debug --url" ;;
        demo) opts="--help --debug --keep --cleanup" ;;
        *) return ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _polroutd polroutd
