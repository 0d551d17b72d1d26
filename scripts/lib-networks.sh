# Removes everything a Roost server with `--firewall-table $1` made on the host: its
# two nftables tables, its bridges (labelled roost:<table>:<network id>) and their
# policy-routing rules. For benchmarks and scripts that run throwaway servers.
remove_roost_networks() {
  local table=$1 link alias id priority
  nft delete table ip "$table" 2>/dev/null || true
  nft delete table bridge "$table" 2>/dev/null || true
  # The main-table rule sits one after the mark rules, whose priority is 20000 plus the
  # first four bytes of the table name's SHA-256 modulo 10000 (RouteOwner::for_table).
  priority=$((20000 + 16#$(printf %s "$table" | sha256sum | cut -c1-8) % 10000))
  ip rule del pref $((priority + 1)) lookup main suppress_prefixlength 0 2>/dev/null || true
  for link in /sys/class/net/*; do
    [ -d "$link/bridge" ] || continue
    alias=$(cat "$link/ifalias" 2>/dev/null || true)
    case "$alias" in
      "roost:$table:"*)
        # The network's policy table: the one routing its range to this bridge.
        for id in $(ip -4 route show table all dev "${link##*/}" 2>/dev/null | sed -n 's/.* table \([0-9]*\).*/\1/p'); do
          # Its mark rule and the host's rule to its range.
          while ip rule del table "$id" 2>/dev/null; do :; done
        done
        ip link delete "${link##*/}" 2>/dev/null || true
        ;;
    esac
  done
}
