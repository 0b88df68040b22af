# bash completion for rpfs: commands, each command's options, and, after a
# vault, its VMs and points (read with `rpfs points VAULT --json`).
_rpfs_vault_json() {
    command rpfs points "$1" --json 2>/dev/null
}
_rpfs_vms() {
    _rpfs_vault_json "$1" | sed -n 's/^ *"vm": "\([^"]*\)".*/\1/p' | sort -u
}
_rpfs_points() {  # VAULT VM
    _rpfs_vault_json "$1" | awk -v vm="$2" '
        /"vm":/ { split($0, a, "\""); cur = a[4] }
        /"id":/ { split($0, a, "\""); if (cur == vm) print a[4] }'
    printf '%s\n' latest latest-app
}

_rpfs() {
    local cur prev cmd i vault= vm= words=() n=0
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="init replicate points export failback mount stats status group reprotect key"
    local global="--verbose --quiet --endpoint --help --version"
    for (( i = 1; i < COMP_CWORD; i++ )); do
        case ${COMP_WORDS[i]} in
        --endpoint) (( i++ )) ;;
        -*) ;;
        *) words[n++]=${COMP_WORDS[i]} ;;
        esac
    done
    cmd=${words[0]-}
    vault=${words[1]-}
    vm=${words[2]-}
    if [[ -z $cmd ]]; then
        [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$global" -- "$cur")) ||
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        return
    fi
    case $prev in
    --disk|--target|--seed|--hook|--cache|--log|--onprem|-o|--prometheus|--block-size|--changed|--key-file)
        COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --point)
        [[ -n $vault && -n $vm ]] && COMPREPLY=($(compgen -W "$(_rpfs_points "$vault" "$vm")" -- "$cur"))
        return ;;
    --mode) COMPREPLY=($(compgen -W "delta full auto" -- "$cur")); return ;;
    --failback-mode) COMPREPLY=($(compgen -W "delta full" -- "$cur")); return ;;
    --retry-profile) COMPREPLY=($(compgen -W "default site-recovery none" -- "$cur")); return ;;
    --compression) COMPREPLY=($(compgen -W "zstd:1 zstd:3 zstd:9 none" -- "$cur")); return ;;
    --endpoint|--time|--threads|--group|--vm|--verify-base|--warning|--critical|--timeout|--cache-size|--jobs|--bwlimit) return ;;
    esac
    if [[ $cur == -* ]]; then
        local opts
        case $cmd in
        init) opts="--block-size --compression --encrypt --key-file" ;;
        key) opts="--key-file --json" ;;
        replicate) opts="--disk --app-consistent --app-consistent=required --hook --group --vm --time --threads" ;;
        reprotect) opts="--disk --changed --verify-base --app-consistent --time --threads" ;;
        group) opts="--json" ;;
        points) opts="--json --group" ;;
        export) opts="--point -o" ;;
        failback) opts="--target --point --mode --create --prepare --complete --commit --status --dry-run
                        --resume --verify --jobs --bwlimit --retry-profile --cache --json --group" ;;
        mount) opts="--foreground --cache --cache-size --seed --timeout --log --onprem --failback-mode -o" ;;
        stats) opts="--json" ;;
        status) opts="--json --prometheus --warning --critical --timeout" ;;
        esac
        COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
        return
    fi
    # Positional arguments: VAULT (a directory or azure://), then a VM, for
    # status any number of VMs.
    if (( n == 1 )); then
        COMPREPLY=($(compgen -d -- "$cur"))
        return
    fi
    case $cmd in
    group) (( n == 2 )) && COMPREPLY=($(compgen -W "create list show" -- "$cur")) ;;
    reprotect) (( n == 2 )) && COMPREPLY=($(compgen -W "$(_rpfs_vms "$vault")" -- "$cur")) ;;
    replicate|points|export|failback|status)
        if (( n == 2 )) || [[ $cmd == status ]]; then
            COMPREPLY=($(compgen -W "$(_rpfs_vms "$vault")" -- "$cur"))
        elif [[ $cmd == export ]] && (( n == 3 )); then
            COMPREPLY=($(compgen -W "disk0 disk1" -- "$cur"))
        fi ;;
    mount) COMPREPLY=($(compgen -d -- "$cur")) ;;
    key) (( n == 2 )) && COMPREPLY=($(compgen -W "list add remove" -- "$cur")) ;;
    esac
}
complete -F _rpfs rpfs
